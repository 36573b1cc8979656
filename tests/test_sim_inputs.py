"""Custom cycles, bad input, log formats and the command line."""


import can
import numpy as np
import pytest

from keidrive import sim
from keidrive.cli import main
from keidrive.errors import KeidriveError
from keidrive.sim.io import LOG_SUFFIXES


def _write_csv(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def day_csv(tmp_path):
    """Two short drives, a steep climb, with a two-hour parked gap between them."""
    rows = ["time_s,speed_kmh,grade_pct"]
    for t in range(0, 61):
        rows.append(f"{t},{min(t * 3, 100) if t < 50 else max(0, 100 - (t - 50) * 10)},{0 if t < 20 else 12}")
    rows.append("7261,0,0")
    for t in range(7262, 7300, 2):  # irregular: 2 s samples
        rows.append(f"{t},{(t - 7261) * 1.5:.1f},-3")
    rows.append("7301,0,0")
    return _write_csv(tmp_path / "day.csv", "\n".join(rows) + "\n")


def test_custom_csv_with_grade_and_gap(day_csv):
    res = sim.simulate("alto-na", day_csv)
    ts = res.frames["timestamp"]
    assert np.all(np.diff(ts) >= 0)
    # the bus is silent while parked
    assert not np.any((ts > 62) & (ts < 7261))
    assert np.any(ts > 7262)
    assert res.truth["trace_shortfall_s"] > 1  # 100 km/h up 12 % is beyond 36 kW
    assert res.truth["duration_s"] == 7301
    assert res.truth["fuel_l"] > 0


def test_csv_mph_and_mps(tmp_path):
    a = sim.load_cycle(_write_csv(tmp_path / "a.csv", "time_s,speed_mph\n0,0\n10,10\n20,0\n"))
    b = sim.load_cycle(_write_csv(tmp_path / "b.csv", "time_s,speed_mps\n0,0\n10,4.4704\n20,0\n"))
    assert a.distance_km == pytest.approx(b.distance_km)


@pytest.mark.parametrize("body, line, words", [
    ("time_s,speed_kmh\n0,0\n1,abc\n", 3, "not a number"),
    ("time_s,speed_kmh\n0,0\n1,5\n1,6\n", 4, "does not increase"),
    ("time_s,speed_kmh\n0,0\n1,-5\n", 3, "out of range"),
    ("time_s,speed_kmh,grade_pct\n0,0,0\n1,5\n", 3, "expected 3 fields"),
    ("time,speed_kmh\n0,0\n", 1, "time_s"),
])
def test_bad_csv_row_names_line(tmp_path, body, line, words):
    path = _write_csv(tmp_path / "bad.csv", body)
    with pytest.raises(KeidriveError) as e:
        sim.load_cycle(path)
    assert f"{path}:{line}:" in str(e.value) and words in str(e.value)


def test_bad_toml_names_parameter_and_file(tmp_path):
    text = (sim.load_vehicle("alto-na").path).read_text()
    bad = tmp_path / "car.toml"
    bad.write_text(text.replace("cd = 0.32", "cd = 3.2"))
    with pytest.raises(KeidriveError, match=r"car\.toml: parameter body\.cd = 3\.2 out of range"):
        sim.load_vehicle(bad)
    bad.write_text(text.replace("tank_l = 27", ""))
    with pytest.raises(KeidriveError, match=r"car\.toml: missing parameter engine\.tank_l"):
        sim.load_vehicle(bad)
    bad.write_text("name = [")
    with pytest.raises(KeidriveError, match="not valid TOML"):
        sim.load_vehicle(bad)


def test_unknown_names_list_valid_ones():
    with pytest.raises(KeidriveError, match="alto-na, nbox-turbo"):
        sim.load_vehicle("mira")
    with pytest.raises(KeidriveError, match="wltc-jp, wltc-3b, udds, hwfet, us06"):
        sim.load_cycle("jc08")


@pytest.fixture(scope="module")
def short_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "short.csv"
    path.write_text("time_s,speed_kmh\n0,0\n5,20\n10,30\n15,0\n")
    return sim.simulate("alto-hybrid", path)


@pytest.mark.parametrize("suffix", LOG_SUFFIXES)
def test_log_formats_round_trip(tmp_path, short_result, suffix):
    out = tmp_path / f"out{suffix}"
    n = sim.write_log(short_result, out)
    got = list(can.LogReader(str(out)))
    assert n == len(got) == len(short_result)
    f = short_result.frames
    for i in (0, 1, len(got) // 2, len(got) - 1):
        assert got[i].arbitration_id == f["arbitration_id"][i]
        assert got[i].is_extended_id == bool(f["is_extended"][i])
        assert bytes(got[i].data) == bytes(f["data"][i])
    assert got[-1].timestamp - got[0].timestamp == pytest.approx(f["timestamp"][-1] - f["timestamp"][0], abs=1e-3)


def test_stream_to_virtual_bus(short_result):
    with can.Bus(interface="virtual", channel="simtest") as rx:
        sent = sim.stream(short_result, "virtual:simtest", speed=None)
        first = rx.recv(1.0)
    assert sent["frames"] == len(short_result)
    assert first.arbitration_id == short_result.frames["arbitration_id"][0]


@pytest.mark.parametrize("argv, words", [
    (["simulate", "--vehicle", "mira", "--cycle", "udds"], "valid vehicles"),
    (["simulate", "--vehicle", "alto-na", "--cycle", "jc08"], "valid cycles"),
    (["simulate", "--vehicle", "alto-na", "--cycle", "udds", "-o", "/nonexistent/dir/x.asc"], "does not exist"),
    (["simulate", "--vehicle", "alto-na", "--cycle", "udds", "-o", "x.xyz"], "unknown log format"),
    (["simulate", "--vehicle", "alto-na", "--cycle", "udds", "--bus", "vcan0"], "INTERFACE:CHANNEL"),
])
def test_cli_errors_are_one_line(capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_json_and_listings(tmp_path, capsys):
    import json
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--vehicle", "sakura-ev", "--cycle", "hwfet", "--json", "-o", str(tmp_path / "x.log")])
    assert e.value.code == 0
    truth = json.loads(capsys.readouterr().out)
    assert truth["vehicle"] == "sakura-ev" and truth["fuel_l"] == 0 and truth["energy_kwh"] > 0
    for cmd in (["cycles", "--json"], ["vehicles", "--json"], ["bench", "--only", "simulator", "--repeat", "1", "--cycle", "hwfet"]):
        with pytest.raises(SystemExit) as e:
            main(cmd)
        assert e.value.code == 0
