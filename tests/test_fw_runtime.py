"""Heap lock, 31-bit bounds, mpy-cross, persistence and config, in the real MicroPython unix port."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import micropython_or_skip
from keidrive.drive.harness import firmware_config, run_firmware
from keidrive.io import record
from keidrive.paths import firmware_dir
from keidrive.sim import load_cycle, load_vehicle, simulate

MP = micropython_or_skip()
FW = Path(firmware_dir())

HEAPLOCK = r"""
import sys, gc, io, micropython
sys.path.insert(0, sys.argv[1])
from keifw import app
class Null:
    def write(self, b, n=None):
        return n
fw, cfg = app.build(cfg_obj={"vehicle": sys.argv[3], "profile": sys.argv[4], "transmit": False}, out=Null())
fw.debug_bounds = True  # every tick: accumulators and clock inside the 31-bit range
K = 256
buf = bytearray(K * 24)
src = open(sys.argv[2], "rb")  # file readinto: no allocation
done = 0
while done < 5000 * 24:
    n = src.readinto(buf)
    fw.records(buf, n // 24, True)
    done += n
frames = 0
err = "none"
micropython.heap_lock()
try:
    while True:
        n = src.readinto(buf)
        if not n:
            break
        fw.records(buf, n // 24, True)
        frames += n // 24
except MemoryError:
    err = "MemoryError"
except OverflowError:
    err = "OverflowError"
micropython.heap_unlock()
print(frames, err, fw.w.lines, fw.alerts.log_total)
"""


def _records(tmp_path, preset, cycle):
    res = simulate(load_vehicle(preset), load_cycle(cycle))
    path = tmp_path / f"{preset}-{cycle}.bin"
    path.write_bytes(record.from_frames(res.frames).tobytes())
    return path, res


@pytest.mark.parametrize("preset,cycle,profile", [
    ("nbox-turbo", "us06", "us-minitruck-55"),   # warnings raised and cleared under the lock
    ("alto-hybrid", "wltc-jp", "jp-expressway"),  # a long trip, every accumulator used
    ("sakura-ev", "us06", "us-interstate"),
])
def test_hot_path_allocates_nothing_under_heap_lock(tmp_path, preset, cycle, profile):
    rec, res = _records(tmp_path, preset, cycle)
    script = tmp_path / "heaplock.py"
    script.write_text(HEAPLOCK)
    module = firmware_config(preset)["vehicle"]
    proc = subprocess.run([MP, "-X", "heapsize=8M", str(script), str(FW), str(rec), module, profile],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    frames, err, lines, warnings = proc.stdout.split()
    assert err == "none"
    assert int(frames) == res.truth["frames"] - 5000 - (5000 % 256 and 256 - 5000 % 256)
    assert int(lines) >= int(res.truth["duration_s"]) - 2  # status lines were formatted under the lock
    if cycle == "us06":
        assert int(warnings) > 0


def test_accumulators_stay_31_bit_on_a_long_trip(tmp_path):
    # 8 x wltc-jp back to back (3.3 h, timestamps shifted): bounds asserted every tick
    res = simulate(load_vehicle("alto-hybrid"), load_cycle("wltc-jp"))
    import numpy as np
    f = res.frames
    dur = float(f["timestamp"][-1]) + 1.0
    parts = []
    for k in range(8):
        g = {key: np.array(f[key]) for key in ("timestamp", "arbitration_id", "is_extended", "dlc", "data")}
        g["timestamp"] = g["timestamp"] + k * dur
        parts.append(record.from_frames(g).tobytes())
    rec = tmp_path / "long.bin"
    rec.write_bytes(b"".join(parts))
    script = tmp_path / "heaplock.py"
    script.write_text(HEAPLOCK)
    proc = subprocess.run([MP, "-X", "heapsize=8M", str(script), str(FW), str(rec), "kei_hybrid_660", "jp-expressway"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[1] == "none"


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m"])
def test_mpy_cross_compiles_the_whole_firmware(tmp_path, arch):
    mpy_cross = shutil.which("mpy-cross")
    assert mpy_cross, "mpy-cross not installed"
    files = [FW / "main.py"] + sorted((FW / "keifw").rglob("*.py"))
    assert len(files) > 15
    for src in files:
        out = tmp_path / (src.stem + ".mpy")
        proc = subprocess.run([mpy_cross, f"-march={arch}", "-o", str(out), str(src)], capture_output=True, text=True)
        assert proc.returncode == 0, (src, proc.stderr)
        assert out.stat().st_size > 0


PERSIST = r"""
import sys
sys.path.insert(0, sys.argv[1])
from array import array
from keifw.persist import TripStore
from keifw.economy import N_ACC
from keifw import alerts as A
d = sys.argv[2]
class AL:
    def __init__(self):
        self.log = array("i", bytes(4 * 4 * A.MAX_LOG)); self.log_n = 0; self.log_total = 0
s = TripStore(d, N_ACC)
acc = array("i", range(N_ACC)); acc[14] = 100  # a trip of 100 ticks: the counters fit in it
al = AL(); al.log_n = 1; al.log_total = 1; al.log[0] = 2; al.log[1] = 1; al.log[3] = -1
for k in range(5):
    acc[0] = 1000 + k
    s.save(acc, al)
# newest is seq 5 in slot 0 (saves alternate 0,1,0,1,0); tear it: half written
path = d + "/trip_a.bin"
data = open(path, "rb").read()
open(path, "wb").write(data[: len(data) // 2])
acc2 = array("i", bytes(4 * N_ACC)); al2 = AL()
ok = TripStore(d, N_ACC).load(acc2, al2)
print(ok, acc2[0], al2.log_n, al2.log[3] == acc2[14])
# flip one payload byte of the other slot too: nothing valid remains
p2 = d + "/trip_b.bin"
b = bytearray(open(p2, "rb").read()); b[20] ^= 1; open(p2, "wb").write(b)
print(TripStore(d, N_ACC).load(array("i", bytes(4 * N_ACC)), AL()))
"""


def test_power_cut_mid_write_never_gives_a_corrupt_load(tmp_path):
    script = tmp_path / "persist.py"
    script.write_text(PERSIST)
    data = tmp_path / "data"
    data.mkdir()
    proc = subprocess.run([MP, str(script), str(FW), str(data)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = proc.stdout.splitlines()
    assert first == "True 1003 1 True"  # torn newest slot ignored: the previous save, one interval lost
    assert second == "False"


def test_trip_resumes_after_restart(tmp_path):
    res = simulate(load_vehicle("nbox-turbo"), load_cycle("hwfet"))
    import numpy as np
    f = {key: np.array(res.frames[key]) for key in ("timestamp", "arbitration_id", "is_extended", "dlc", "data")}
    half = len(f["timestamp"]) // 2
    a = {k: v[:half] for k, v in f.items()}
    b = {k: v[half:] for k, v in f.items()}
    out1 = run_firmware(a, vehicle="nbox-turbo", workdir=tmp_path)
    out2 = run_firmware(b, vehicle="nbox-turbo", workdir=tmp_path)
    assert out1.ok and out2.ok and out2.trip["restored"]
    truth = res.truth
    assert abs(out2.trip["distance_km"] - truth["distance_km"]) <= 0.005 * truth["distance_km"]
    assert abs(out2.trip["fuel_l"] - truth["fuel_l"]) <= 0.005 * truth["fuel_l"]


def test_bad_config_logs_clear_errors_and_runs_on_defaults(tmp_path):
    res = simulate(load_vehicle("nbox-turbo"), load_cycle("hwfet"))
    out = run_firmware(res.frames, vehicle="nbox-turbo", profile="warp-speed",
                           config={"transmit": "yes", "save_interval_s": 1, "colour": "red"})
    assert out.ok
    messages = [e["message"] for e in out.errors]
    assert any("profile" in m and "warp-speed" in m for m in messages)
    assert any("transmit" in m for m in messages)
    assert any("save_interval_s" in m and "10..3600" in m for m in messages)
    assert any("unknown config key 'colour'" in m for m in messages)
    assert out.trip["profile"] == "jp-expressway"
    assert out.trip["tx_frames"] == 0


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_unreadable_config_is_not_a_crash(tmp_path, text):
    cfg = tmp_path / "config.json"
    cfg.write_text(text)
    proc = subprocess.run([MP, str(FW / "main.py"), "--stdin", "--config", str(cfg)], input=b"",
                          capture_output=True, timeout=60)
    assert proc.returncode == 0
    lines = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert lines[0]["type"] == "error" and lines[-1]["type"] == "trip"


def test_config_schema_is_importable_data():
    import importlib.util
    spec = importlib.util.spec_from_file_location("kcfg", FW / "keifw" / "config.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.DEFAULTS["vehicle"] == "kei_turbo_660" and mod.DEFAULTS["profile"] == "jp-expressway"
    assert mod.DEFAULTS["transmit"] is False and mod.DEFAULTS["save_interval_s"] == 60
    cfg, errors = mod.validate({"pin_led": 2, "pin_buzzer": None})
    assert errors == [] and cfg["pin_led"] == 2


PORT_VS_STREAM = r"""
import sys
sys.path.insert(0, sys.argv[1])
from keifw import app


class Lines:
    def __init__(self):
        self.out = []

    def write(self, b, n=None):
        self.out.append(bytes(b[:n] if n is not None else b))
        return n


data = open(sys.argv[2], "rb").read()
cfg = {"vehicle": sys.argv[3], "profile": "jp-expressway"}
# 1: stream records (the SIL path: Firmware.records)
a = Lines()
fw, _ = app.build(cfg_obj=cfg, out=a)
app.run_stream(fw, open(sys.argv[2], "rb"), True)
# 2: one frame at a time (the board path: clock + Firmware.frame)
b = Lines()
fw, _ = app.build(cfg_obj=cfg, out=b)
for j in range(len(data) // 24):
    r = data[j * 24:j * 24 + 24]
    t = (r[0] | (r[1] << 8) | (r[2] << 16) | (r[3] << 24)) & 0x3FFFFFFF
    if r[12] & 6:  # remote / error frames: skipped before the clock, as in records()
        fw.frames += 1
        continue
    fw.clock(t)
    fw.frames += 1
    key = r[8] | (r[9] << 8) | (r[10] << 16) | ((r[11] & 0x1F) << 24)
    fw.frame(key | 0x20000000 if r[12] & 1 else key, memoryview(r)[16:24], r[13], t)
fw.finish()


def unskipped(line):  # remote frames are counted by records() only (a port drops them)
    k = line.find(b'"skipped_frames":')
    return line if k < 0 else line[:k] + line[line.find(b",", k) + 1:]


a.out = [unskipped(x) for x in a.out]
b.out = [unskipped(x) for x in b.out]
print(len(a.out), int(a.out == b.out), fw.val.bad_total(), fw.unknown)
for x, y in zip(a.out, b.out):
    if x != y:
        print(x)
        print(y)
        break
"""


@pytest.mark.parametrize("preset", ["nbox-turbo", "sakura-ev"])
def test_board_frame_path_matches_the_stream_path(tmp_path, preset):
    """Firmware.frame (ports) and Firmware.records (streams) share the viper
    scanner: on traffic with bad CHECKSUMs, COUNTERs, DLCs, unknown ids,
    remote frames and a lost message, every line is the same."""
    import numpy as np

    res = simulate(load_vehicle(preset), load_cycle("us06"))
    r = np.frombuffer(record.from_frames(res.frames).tobytes(), dtype=np.uint8).reshape(-1, 24)[:60000].copy()
    rng = np.random.default_rng(7)
    n = len(r)
    pick = rng.choice(n, n // 50, replace=False)
    r[pick, 16 + rng.integers(0, 8, len(pick))] ^= 0x10  # CHECKSUM / COUNTER / value errors
    r[rng.choice(n, n // 300, replace=False), 13] = 7  # wrong DLC
    unknown = rng.choice(n, n // 300, replace=False)
    r[unknown, 8], r[unknown, 9] = 0x55, 0x05
    r[rng.choice(n, n // 500, replace=False), 12] |= 2  # remote frames
    ids = r[:, 8].astype(int) | (r[:, 9].astype(int) << 8)
    keep = np.ones(n, bool)
    keep[20000:30000] = ids[20000:30000] != ids[0]  # one message lost for a while
    path = tmp_path / "traffic.bin"
    path.write_bytes(r[keep].tobytes())
    script = tmp_path / "port_vs_stream.py"
    script.write_text(PORT_VS_STREAM)
    proc = subprocess.run([MP, "-X", "heapsize=16M", str(script), str(FW), str(path), firmware_config(preset)["vehicle"]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines, same, bad, unknown_frames = map(int, proc.stdout.split()[:4])
    assert lines > 100 and bad > 0 and unknown_frames > 0
    assert same == 1, proc.stdout


def _pytest_here(test, env):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{test}"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=str(FW.parent))


def test_firmware_tests_find_micropython_as_the_harness_does():
    # a venv that is not activated: the interpreter's scripts folder is not on PATH
    env = {k: v for k, v in os.environ.items() if k not in ("KEIDRIVE_MICROPYTHON", "CI")}
    env["PATH"] = "/usr/bin:/bin"
    proc = _pytest_here("test_config_schema_is_importable_data", env)
    assert "1 passed" in proc.stdout, proc.stdout


def test_firmware_tests_fail_in_ci_without_micropython():
    env = dict(os.environ, CI="true", KEIDRIVE_MICROPYTHON="/nonexistent/micropython")
    proc = _pytest_here("test_config_schema_is_importable_data", env)
    assert proc.returncode != 0 and "CI=true and KEIDRIVE_MICROPYTHON" in proc.stdout, proc.stdout
