"""A trip slot whose CRC is valid but whose fields are out of range (a bug
in an older firmware, a flipped bit the CRC happened to match, a slot from
another build) must not crash the firmware at every boot: it boots, keeps
what is valid, starts fresh where nothing is, and says so in telemetry.

The slots are written by the firmware's own TripStore in the MicroPython unix
port; the firmware then boots on them in the unix port."""

import pytest

from keidrive import sim
from keidrive.drive.harness import run_records
from keidrive.paths import firmware_dir
from keidrive.io.record import from_frames

from conftest import run_micropython

CYCLE = "time_s,speed_kmh\n0,0\n2,0\n10,50\n25,50\n32,0\n34,0\n"

# Writes one slot with TripStore.save: acc[i] = ACC values, then the log fields.
WRITE_SLOT = """
import sys
sys.path.insert(0, sys.argv[1])
from array import array
from keifw.persist import TripStore
from keifw.economy import N_ACC, DIST, TICKS, MOVING_TICKS
from keifw import alerts as A

class Log:
    log = array("i", bytes(16 * A.MAX_LOG))
store = TripStore(sys.argv[2], N_ACC)
acc = array("i", bytes(4 * N_ACC))
acc[DIST] = 5000          # 5 km driven before the cut
acc[TICKS] = 6000         # 10 minutes
acc[MOVING_TICKS] = 5000
for field in sys.argv[3].split(","):
    if field:
        k, v = field.split("=")
        acc[int(k)] = int(v)
log = Log()
log.log_n, log.log_total = [int(x) for x in sys.argv[4].split(",")]
log.log[0], log.log[1], log.log[2], log.log[3] = [int(x) for x in sys.argv[5].split(",")]
store.save(acc, log)
print("saved")
"""


@pytest.fixture(scope="module")
def drive():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        cycle = Path(folder) / "short.csv"
        cycle.write_text(CYCLE)
        result = sim.simulate("alto-na", str(cycle))
    return from_frames(result.frames).tobytes(), result.truth


def boot_on_slot(tmp_path, drive, acc="", log="0,0", entry="0,0,0,0"):
    data = tmp_path / "data"
    data.mkdir()
    assert "saved" in run_micropython(WRITE_SLOT, str(firmware_dir()), str(data), acc, log, entry)
    records, truth = drive
    report = run_records(records, {"vehicle": "kei_turbo_660", "profile": "jp-expressway"}, workdir=tmp_path,
                         timeout=120)
    assert report.ok, report.failure()
    return report, truth


def store_errors(report):
    return [e["message"] for e in report.errors if "trip store" in e["message"]]


def test_a_valid_slot_is_restored(tmp_path, drive):
    report, truth = boot_on_slot(tmp_path, drive, log="1,1", entry="0,1,100,200")
    assert not store_errors(report)
    assert report.trip["distance_km"] == pytest.approx(5 + truth["distance_km"], abs=0.002)
    assert len(report.trip["warnings"]) >= 1


def test_a_log_count_out_of_range_keeps_the_trip_and_drops_the_log(tmp_path, drive):
    report, truth = boot_on_slot(tmp_path, drive, log="1000,1000", entry="0,1,100,200")
    assert report.trip["distance_km"] == pytest.approx(5 + truth["distance_km"], abs=0.002)
    assert report.trip["warnings"] == []
    (message,) = store_errors(report)
    assert "log" in message


@pytest.mark.parametrize("entry", ["9,1,100,200", "0,7,100,200", "0,1,-5,200", "0,1,300,200"])
def test_a_bad_warning_entry_drops_the_log(tmp_path, drive, entry):
    report, _ = boot_on_slot(tmp_path, drive, log="1,1", entry=entry)
    assert report.trip["warnings"] == []
    assert len(store_errors(report)) == 1


@pytest.mark.parametrize("acc", ["0=-5", "1=1073741823", "15=7000", "16=100000", "14=-1"])
def test_out_of_range_figures_start_a_fresh_trip(tmp_path, drive, acc):
    report, truth = boot_on_slot(tmp_path, drive, acc=acc)
    assert report.trip["distance_km"] == pytest.approx(truth["distance_km"], abs=0.002)
    (message,) = store_errors(report)
    assert "fresh trip" in message
