"""A lockstep drive fed as it is simulated: straight into the firmware's
stdin it gives the trip the virtual bus's hub gives, and the report it keeps
does not grow with the drive (status lines thinned evenly, every warning,
signal and the trip kept); and a run imports no DBC reader."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import SHORT_CYCLE, micropython_or_skip
from keidrive import sim
from keidrive.drive.harness import feed_over_bus, firmware_config, one_core
from keidrive.io import record

micropython_or_skip()


@pytest.fixture(autouse=True)
def private_bus_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KEIDRIVE_BUS_DIR", str(tmp_path / "bus"))


@pytest.fixture(scope="module")
def hub_drive(tmp_path_factory):
    """us06 (hard accelerations: warnings) on a named channel, through its hub."""
    whole = sim.simulate("nbox-turbo", "us06")
    previous = os.environ.get("KEIDRIVE_BUS_DIR")
    os.environ["KEIDRIVE_BUS_DIR"] = str(tmp_path_factory.mktemp("hub") / "bus")
    try:
        report, figures = feed_over_bus(record.from_frames(whole.frames),
                                        firmware_config("nbox-turbo", "us-minitruck-55"), bus="keidrive:through-hub")
    finally:
        if previous is None:
            del os.environ["KEIDRIVE_BUS_DIR"]
        else:
            os.environ["KEIDRIVE_BUS_DIR"] = previous
    assert report.ok, report.failure()
    return whole, report, figures


def test_without_a_hub_the_trip_and_every_event_are_the_hubs(hub_drive):
    whole, through_hub, _ = hub_drive
    drive = sim.Simulation("nbox-turbo", "us06")
    report, figures = feed_over_bus(record.pieces_from_frames(drive), firmware_config("nbox-turbo", "us-minitruck-55"))
    assert report.ok, report.failure()
    assert figures["frames"] == len(whole) == drive.truth["frames"]
    assert report.events == through_hub.events
    assert not os.path.exists(os.environ["KEIDRIVE_BUS_DIR"])  # no hub, not even its folder


def test_keeping_to_one_core_changes_nothing_but_the_pace(hub_drive):
    _, through_hub, _ = hub_drive
    with one_core():
        report, _ = feed_over_bus(record.pieces_from_frames(sim.Simulation("nbox-turbo", "us06")),
                                  firmware_config("nbox-turbo", "us-minitruck-55"))
    assert report.events == through_hub.events


def test_the_report_keeps_at_most_its_limit_of_status_lines_evenly(hub_drive):
    _, through_hub, _ = hub_drive
    report, _ = feed_over_bus(record.pieces_from_frames(sim.Simulation("nbox-turbo", "us06")),
                              firmware_config("nbox-turbo", "us-minitruck-55"), status_limit=64)
    kept = [s["t_s"] for s in report.statuses]
    every = [s["t_s"] for s in through_hub.statuses]
    stride = 1 << (-(-len(every) // 64) - 1).bit_length()
    assert len(every) > 64 >= len(kept) and kept == every[::stride]
    others = [e for e in through_hub.events if e.get("type") != "status"]
    assert [e for e in report.events if e.get("type") != "status"] == others
    assert through_hub.warnings and report.trip == through_hub.trip
    assert np.isfinite(report.trip["distance_km"])


IMPORTS = """
import sys
import keidrive
trip = keidrive.run(keidrive.DriveSpec(cycle=sys.argv[1]))
print(trip.frames > 0, sorted(name for name in ("cantools", "can", "asammdf") if name in sys.modules))
"""


def test_a_run_imports_neither_cantools_nor_python_can_once_its_tables_are_cached(tmp_path):
    """Reading a DBC takes cantools (and with it python-can, asammdf, pandas:
    100 MiB and half a second): a run takes the simulator's tables from the
    cache instead, and on a private bus needs no python-can."""
    (tmp_path / "short.csv").write_text(SHORT_CYCLE)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), KEIDRIVE_BUS_DIR=str(tmp_path / "bus"))
    outputs = [subprocess.run([sys.executable, "-c", IMPORTS, str(tmp_path / "short.csv")], capture_output=True,
                              text=True, env=env, timeout=300, check=False) for _ in range(2)]
    assert all(out.returncode == 0 for out in outputs), outputs[-1].stderr
    assert outputs[1].stdout.split("\n")[0] == "True []"  # the first run filled the cache
