"""keidrive replay LOG --nmea FILE: a CAN log and a GNSS module's capture of
the same drive into the firmware together give the jurisdictions of the
drive itself; a capture that is not one is one line."""

import json

import pytest
from conftest import keidrive, micropython_or_skip, one_line_error
from gps_helpers import route_drive
from keidrive import sim
from keidrive.gps.nmea import Receiver
from keidrive.gps.route import load_route, repeat_cycle
from keidrive.sim.io import write_log

micropython_or_skip()


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """tn-al on hwfet: its CAN log (.blf, stamped from 0 s) and its NMEA, a
    sentence per line, with a broken line among them, as a UART gives them."""
    folder = tmp_path_factory.mktemp("replay")
    route = load_route("tn-al")
    result = sim.simulate("nbox-turbo", repeat_cycle(sim.load_cycle("hwfet"), route))
    write_log(result, folder / "drive.blf")
    timed = Receiver().sentences(route, result.trace["time_s"], result.trace["speed_kmh"])
    lines = [data for _t, data in timed]
    lines.insert(500, b"$GNRMC,1502\r\n")  # the module was unplugged mid-sentence
    (folder / "drive.nmea").write_bytes(b"".join(lines))
    return folder


def test_a_log_and_its_capture_give_the_drives_jurisdictions(capture, tmp_path):
    done = keidrive("replay", str(capture / "drive.blf"), "--nmea", str(capture / "drive.nmea"), "--profile",
                    "us-interstate", "--json", env=None, timeout=900)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    drove, _ = route_drive("tn-al", "hwfet", tmp_path)
    expected = drove.of_type("jurisdiction")
    got = out["jurisdictions"]
    assert [(c["region"], c["reason"], c["limit_kmh"]) for c in got] == \
        [(c["region"], c["reason"], c["limit_kmh"]) for c in expected]
    for a, b in zip(got, expected):
        assert abs(a["t_s"] - b["t_s"]) <= 1.5
    assert out["gps"]["garbled"] == 1 and out["frames"] == drove.trip["frames"] == out["firmware"].get("frames", out["frames"])


def test_a_capture_that_is_not_one_is_one_line(capture, tmp_path):
    bad = tmp_path / "bad.nmea"
    bad.write_text("hello\nworld\n")
    one_line_error(keidrive("replay", str(capture / "drive.blf"), "--nmea", str(bad), env=None, timeout=300),
                   "not an NMEA capture")
    one_line_error(keidrive("replay", str(capture / "drive.blf"), "--nmea", str(tmp_path / "none.nmea"), env=None,
                            timeout=300), "cannot read it")
    one_line_error(keidrive("replay", str(capture / "drive.blf"), "--nmea", str(capture / "drive.nmea"),
                            "--nmea-offset", "100000", env=None, timeout=300), "do not overlap")
