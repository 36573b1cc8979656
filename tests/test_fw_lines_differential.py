"""The telemetry lines byte for byte against the previous formatter.

tests/lines_reference/ holds keifw/lines.py and keifw/telemetry.py as they
were at cfc9719 (an element at a time, before the template formatter), the
reference lines.py since extended, in the same style, with what the lines
gained later (the quality object of status and trip lines; null for fuel,
eco score and an engine car's pack energy where they cannot be computed): the
firmware tree is copied with those two files put back, and both trees run
the same whole drives on the MicroPython unix port; every line (status,
warning, signal, trip) must be the same bytes. Presets of each powertrain,
several profiles, and faults that put the lines' rarer fields to work:
a message lost and restored (missing, null speed), a flooded message and a
forged fuel rate (implausible), warnings raised, escalated and cleared.
The OBD-II mode's lines are compared as parsed objects, in key order. On
the 32-bit unix port the same drives run under ``heap_lock`` (status lines
allocate nothing) and hash the same as the reference on the 64-bit one."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import keidrive.bench
from conftest import micropython_or_skip
from keidrive import faults
from keidrive.drive.harness import firmware_command, firmware_config
from keidrive.drive.obdloop import drive_obd
from keidrive.io import record
from keidrive.paths import firmware_dir
from keidrive.sim import load_cycle, load_vehicle, simulate

micropython_or_skip()

REFERENCE = Path(__file__).parent / "lines_reference"


@pytest.fixture(scope="module")
def reference_tree(tmp_path_factory):
    tree = tmp_path_factory.mktemp("reference") / "firmware"
    shutil.copytree(firmware_dir(), tree, ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    for name in ("lines.py", "telemetry.py"):
        shutil.copy(REFERENCE / name, tree / "keifw" / name)
    return tree


def _lines(records, config, tree, work):
    work.mkdir()
    (work / "data").mkdir()
    (work / "config.json").write_text(json.dumps(config))
    proc = subprocess.run(
        firmware_command("micropython", tree) + ["--stdin", "--config", str(work / "config.json"),
                                                 "--data", str(work / "data"), "--clock", "virtual"],
        input=records, capture_output=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.splitlines()


def _forged_fuel(records, t0, t1):
    """ENGINE_2 frames of kei_turbo_660 from t0 to t1 s re-encoded with the
    DBC's largest FuelRate, CHECKSUM recomputed (CRC-8/SAE-J1850, as the DBC
    compiler's)."""
    import cantools
    from keidrive.dbccompiler.checksum import ALGORITHMS
    from keidrive.paths import dbc_dir

    crc = ALGORITHMS["CRC8_SAEJ1850"]
    msg = cantools.database.load_file(str(dbc_dir() / "kei_turbo_660.dbc")).get_message_by_name("ENGINE_2")
    out = records.copy()
    t = out["timestamp_us"]
    for i in np.nonzero((out["can_id"] == msg.frame_id) & (t >= t0 * 1e6) & (t < t1 * 1e6))[0]:
        sig = msg.decode(bytes(out["data"][i]), decode_choices=False, scaling=True)
        sig["FuelRate"] = 65.535
        data = bytearray(msg.encode(sig, strict=False))
        data[7] = crc.compute(bytes(data), skip_byte=7)
        out["data"][i] = np.frombuffer(bytes(data), dtype=np.uint8)
    return out


DRIVES = {
    # preset, cycle, profile, faults
    "turbo-wltc-speed-lost": ("nbox-turbo", "wltc-jp", "jp-expressway", [faults.Drop(0x1A0, 300.0, 5.0)]),
    "turbo-us06-warnings": ("nbox-turbo", "us06", "us-minitruck-55", []),
    "turbo-hwfet-interstate": ("nbox-turbo", "hwfet", "us-interstate", [faults.Drop(0x130, 200.0, 3.0)]),
    "ev-us06-interstate": ("sakura-ev", "us06", "us-interstate", [faults.Drop(None, 100.0, 2.0)]),
    "hybrid-wltc-flooded": ("alto-hybrid", "wltc-jp", "jp-expressway-120",
                            [faults.Flood(can_id=0x1D8, load=0.05, t0=300.0, duration=20.0)]),
}


@pytest.mark.parametrize("name", sorted(DRIVES))
def test_every_line_of_a_drive_is_the_previous_formatters(name, reference_tree, tmp_path):
    preset, cycle, profile, drive_faults = DRIVES[name]
    records = faults.apply(record.from_frames(simulate(load_vehicle(preset), load_cycle(cycle)).frames),
                           drive_faults)
    config = firmware_config(preset, profile)
    data = records.tobytes()
    ours = _lines(data, config, None, tmp_path / "ours")
    theirs = _lines(data, config, reference_tree, tmp_path / "reference")
    assert len(ours) == len(theirs) > 100
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"line {k}"


def test_an_implausible_fuel_rate_reads_the_same(reference_tree, tmp_path):
    records = _forged_fuel(record.from_frames(simulate(load_vehicle("nbox-turbo"), load_cycle("wltc-jp")).frames),
                           300.0, 310.0)
    config = firmware_config("nbox-turbo")
    ours = _lines(records.tobytes(), config, None, tmp_path / "ours")
    theirs = _lines(records.tobytes(), config, reference_tree, tmp_path / "reference")
    assert any(b'"implausible":["ENGINE_2.FuelRate"]' in line for line in ours)
    assert ours == theirs


def test_the_obd_mode_lines_read_the_same(reference_tree):
    # an ECU that stops mid-drive: OBD-II missing, the speed from PID 0x0D
    # until then, the trip's OBD-II part
    result = simulate("alto-hybrid", "hwfet", frames=False)
    ours, _ = drive_obd(result, faults={"stop_at_s": 400})
    theirs, _ = drive_obd(result, faults={"stop_at_s": 400}, tree=reference_tree)
    assert ours.ok and theirs.ok
    assert any("OBD-II" in s["missing"] for s in ours.statuses)
    assert [list(e.items()) for e in ours.events] == [list(e.items()) for e in theirs.events]


def _hashed_drive(binary, tree, path, vehicle, profile):
    """host/keidrive/bench/mp_drive.py over the records at ``path``: chunks
    processed under heap_lock, every line hashed."""
    bench = os.path.dirname(keidrive.bench.__file__)
    script = (f"import sys; sys.path[:0] = [{str(tree)!r}, {bench!r}]; import mp_drive; "
              f"mp_drive.run({str(path)!r}, {vehicle!r}, {profile!r}, 'stream')")
    proc = subprocess.run([binary, "-X", "heapsize=1M", "-c", script], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.splitlines()[0])


@pytest.mark.parametrize("name", ["ev-us06-interstate", "hybrid-wltc-flooded", "turbo-wltc-speed-lost"])
def test_the_lines_allocate_nothing_on_the_32bit_unix_port(name, reference_tree, tmp_path):
    if not os.environ.get("KEIDRIVE_MICROPYTHON_SRC"):
        pytest.skip("the 32-bit unix port is built from a MicroPython v1.28 source: set KEIDRIVE_MICROPYTHON_SRC")
    from keidrive.target.builder import build

    preset, cycle, profile, drive_faults = DRIVES[name]
    records = faults.apply(record.from_frames(simulate(load_vehicle(preset), load_cycle(cycle)).frames),
                           drive_faults)
    path = tmp_path / "drive.bin"
    path.write_bytes(records.tobytes())
    vehicle = firmware_config(preset)["vehicle"]
    ours = _hashed_drive(build("unix32").path, firmware_dir(), path, vehicle, profile)
    theirs = _hashed_drive(micropython_or_skip(), reference_tree, path, vehicle, profile)
    assert ours["err"] == "none" and ours["frames"] == len(records)
    assert ours["lines"] == theirs["lines"] > 500 and ours["hash"] == theirs["hash"]


LINES_OF_A_PORT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from keifw import app, lines
class Out:
    def write(self, b, n=None):
        sys.stdout.write(bytes(b[:n] if n is not None else b).decode())
        return n
class Port:  # an MCP2515's counters
    overruns = 3
    tec = 17
    rec = 128
    def state(self):
        return 0
fw, _ = app.build(cfg_obj={"vehicle": sys.argv[3], "profile": "us-interstate"}, out=Out(), port=Port())
buf = bytearray(256 * 24)
src = open(sys.argv[2], "rb")
for _ in range(40):
    fw.records(buf, src.readinto(buf) // 24, True)
lines.status(fw)
fw.frames = 1073741823  # the largest small int of a 32-bit port
fw.econ.acc[0] = 1073741823
lines.status(fw)
for k in range(4):
    for ev in range(1, 4):
        lines.warning(fw, k, ev, 12345)
lines.signal(fw, 0, b"lost", 0)
lines.error(fw.w, 'a "quoted" \\ path\x01' + "x" * 400)
lines.info(fw.w, b'"event":', b"trip_restored")
lines.trip(fw)
"""


@pytest.mark.parametrize("preset", ["nbox-turbo", "sakura-ev", "alto-hybrid"])
def test_a_ports_counters_and_the_rare_lines_read_the_same(preset, reference_tree, tmp_path):
    # tec / rec (a port that has them), every warning kind and state, an
    # error line to escape and cut, an info line, figures at 2**30 - 1
    path = tmp_path / "drive.bin"
    path.write_bytes(record.from_frames(simulate(load_vehicle(preset), load_cycle("us06")).frames).tobytes())
    script = tmp_path / "lines.py"
    script.write_text(LINES_OF_A_PORT)
    vehicle = firmware_config(preset)["vehicle"]
    out = []
    for tree in (firmware_dir(), reference_tree):
        proc = subprocess.run([micropython_or_skip(), str(script), str(tree), str(path), vehicle],
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
        out.append(proc.stdout.splitlines())
    crafted = out[0][-(2 + 12 + 4):]
    assert '"tec":17,"rec":128' in crafted[0] and '"frames":1073741823' in crafted[1]
    assert crafted[-1].startswith('{"type":"trip"') and '"distance_km":1073741.823' in crafted[-1]
    assert out[0] == out[1]
