"""The firmware's clock on real 32-bit MicroPython: whole trips across 2**30 us
wraps under heap_lock (32-bit unix port, the Cortex-M3 build in qemu), and
timestamps that jump (a logger glitch, a clock step) costing no driving.

The drives go through host/keidrive/bench/mp_drive.py, the MicroPython side
of the target benchmark: records read a chunk at a time outside the lock,
processed under ``micropython.heap_lock()``, every telemetry line hashed."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import keidrive.bench
from conftest import micropython_or_skip
from keidrive.drive.harness import run_records
from keidrive.io import record
from keidrive.paths import firmware_dir
from keidrive.sim import load_cycle, load_vehicle, simulate

MP = micropython_or_skip()
BENCH = os.path.dirname(keidrive.bench.__file__)
WRAP_US = 1 << 30
_SIM = {}


def _records(preset, cycle):
    if (preset, cycle) not in _SIM:
        _SIM[preset, cycle] = record.from_frames(simulate(load_vehicle(preset), load_cycle(cycle)).frames)
    return _SIM[preset, cycle]


def _shifted(recs, start_us, repeat=1, until_s=None):
    """``repeat`` copies of the drive back to back, the first stamp at ``start_us``."""
    if until_s is not None:
        recs = recs[recs["timestamp_us"] < int(until_s * 1e6)]
    span = int(recs["timestamp_us"][-1]) + 1_000_000
    parts = []
    for k in range(repeat):
        part = recs.copy()
        part["timestamp_us"] += np.uint64(start_us + k * span)
        parts.append(part)
    return np.concatenate(parts).tobytes()


def _unix32():
    if not os.environ.get("KEIDRIVE_MICROPYTHON_SRC"):
        pytest.skip("the 32-bit builds come from a MicroPython v1.28 source: set KEIDRIVE_MICROPYTHON_SRC "
                    "(a source tree or its release tarball)")
    from keidrive.target.builder import build

    return build("unix32").path


def _drive_unix(binary, path, vehicle, profile, route="stream"):
    script = (f"import sys; sys.path[:0] = [{str(firmware_dir())!r}, {BENCH!r}]; import mp_drive; "
              f"mp_drive.run({str(path)!r}, {vehicle!r}, {profile!r}, {route!r})")
    proc = subprocess.run([binary, "-X", "heapsize=1M", "-c", script], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    drive, trip = (json.loads(line) for line in proc.stdout.splitlines()[:2])
    return drive, trip


def test_trip_across_clock_wraps_on_the_32bit_unix_port_under_heap_lock(tmp_path):
    # us06 twice (20 min, warnings raised and cleared): starting 10 s before a
    # wrap, it crosses two
    recs = _records("nbox-turbo", "us06")
    unix32 = _unix32()
    results = []
    for start in (WRAP_US - 10_000_000, 0):
        path = tmp_path / f"drive-{start}.bin"
        path.write_bytes(_shifted(recs, start, repeat=2))
        results.append(_drive_unix(unix32, path, "kei_turbo_660", "us-minitruck-55"))
    results.append(_drive_unix(MP, path, "kei_turbo_660", "us-minitruck-55"))  # the 64-bit port
    (drive, trip), *others = results
    assert drive["err"] == "none" and drive["frames"] == 2 * len(recs)
    assert drive["lines"] >= 2 * 600 - 4  # status lines formatted under the lock
    for other_drive, other_trip in others:
        assert other_drive["err"] == "none"
        assert other_drive["hash"] == drive["hash"]  # every line the same
        assert other_trip == trip
    assert trip["clock_jumps"] == 0 and trip["warning_count"] >= 10
    assert abs(trip["distance_km"] - 2 * 12.883) < 0.01


def test_board_path_across_a_clock_wrap_on_the_32bit_unix_port_under_heap_lock(tmp_path):
    recs = _records("nbox-turbo", "us06")
    path = tmp_path / "drive.bin"
    path.write_bytes(_shifted(recs, WRAP_US - 30_000_000, until_s=90))
    drive, trip = _drive_unix(_unix32(), path, "kei_turbo_660", "us-minitruck-55", route="board")
    assert drive["err"] == "none" and drive["frames"] == trip["frames"] > 25_000
    assert trip["duration_s"] >= 89


def _qemu_drive(tmp_path, data, vehicle, profile, route):
    if not os.environ.get("KEIDRIVE_MICROPYTHON_SRC"):
        pytest.skip("the qemu Cortex-M3 image is built from a MicroPython v1.28 source: set KEIDRIVE_MICROPYTHON_SRC")
    from keidrive.target.builder import build
    from keidrive.target.qemu import Machine, Session

    image = build("qemu").path  # the firmware frozen in, 128 KiB heap
    mount = tmp_path / "mount"
    mount.mkdir(exist_ok=True)
    shutil.copy(os.path.join(BENCH, "mp_drive.py"), mount / "mp_drive.py")
    (mount / "drive.bin").write_bytes(data)
    with Machine(image) as machine:
        out = Session(machine, mount=mount).run(
            f"import mp_drive; mp_drive.run('drive.bin', {vehicle!r}, {profile!r}, {route!r})", timeout=600)
    drive, trip = (json.loads(line) for line in out.decode().splitlines()[:2])
    return drive, trip


def test_trip_across_a_clock_wrap_on_the_cortex_m_build_under_heap_lock(tmp_path):
    # 12 s of us06 over the wrap: the records cross mpremote's mount at about 8 kB/s
    route = "stream"
    data = _shifted(_records("nbox-turbo", "us06"), WRAP_US - 6_000_000, until_s=12)
    drive, trip = _qemu_drive(tmp_path, data, "kei_turbo_660", "us-minitruck-55", route)
    assert drive["err"] == "none" and trip["frames"] == len(data) // 24
    path = tmp_path / "drive.bin"
    path.write_bytes(data)
    unix_drive, unix_trip = _drive_unix(MP, path, "kei_turbo_660", "us-minitruck-55", route)
    assert unix_trip == trip and unix_drive["hash"] == drive["hash"]


def _glitch(recs, at_s, jump_s, only_one):
    out = recs.copy()
    k = int(np.searchsorted(out["timestamp_us"], int(at_s * 1e6)))
    sel = slice(k, k + 1) if only_one else slice(k, None)
    out["timestamp_us"][sel] = (out["timestamp_us"][sel].astype(np.int64) + int(jump_s * 1e6)).astype(np.uint64)
    return out.tobytes()


@pytest.mark.parametrize("at_s,jump_s,only_one,jumps", [
    (200.0, 200.0, True, 2),    # one frame stamped 200 s ahead, then back to normal
    (300.0, -30.0, False, 1),   # the logger's clock set back 30 s
    (300.0, 120.0, False, 1),   # ... or forward 2 minutes
])
def test_a_timestamp_discontinuity_costs_no_driving(at_s, jump_s, only_one, jumps):
    recs = _records("nbox-turbo", "us06")
    cfg = {"vehicle": "kei_turbo_660", "profile": "us-interstate"}
    clean = run_records(recs.tobytes(), cfg)
    faulted = run_records(_glitch(recs, at_s, jump_s, only_one), cfg)
    assert clean.ok and faulted.ok
    a, b = clean.trip, faulted.trip
    assert b["clock_jumps"] == jumps and a["clock_jumps"] == 0
    assert abs(b["distance_km"] - a["distance_km"]) <= 0.001 * a["distance_km"]
    assert abs(b["fuel_l"] - a["fuel_l"]) <= 0.001 * a["fuel_l"]
    assert abs(b["duration_s"] - a["duration_s"]) <= 0.2
    assert [(w["kind"], w["level"]) for w in b["warnings"]] == [(w["kind"], w["level"]) for w in a["warnings"]]
    assert len(a["warnings"]) == 5
