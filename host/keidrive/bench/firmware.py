"""The firmware's own speed and allocation, against cantools.

firmware_fps: the full firmware loop (decode, validity, economy, eco score,
warnings, 1 Hz status formatting to a null sink) in MicroPython on the
simulator's frame mix. The records are preloaded into memory inside
micropython and fed through the same ``Firmware.records`` path the SIL uses
(from an ``io.BytesIO``), timed with ``time.ticks_us`` around the
processing only, so pipe I/O is not what is measured.

cantools_fps: ``cantools`` ``Database.decode_message`` alone, on CPython, for
the same frames in the same run.

alloc_bytes_per_frame: ``gc.mem_alloc()`` delta over the steady-state run
(after a warm-up of WARMUP frames) divided by the frames processed; the same
run is then repeated under ``micropython.heap_lock()``, reported as
``heap_locked_ok``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ..drive.harness import firmware_config
from ..io import record
from ..paths import dbc_dir, firmware_dir as _firmware_dir

WARMUP = 5000

_BENCH_SCRIPT = r"""
import sys, gc, io, time, micropython
sys.path.insert(0, sys.argv[1])
from keifw import app
class Null:
    def write(self, b, n=None):
        return n
data = open(sys.argv[2], "rb").read()
cfg = {"vehicle": sys.argv[3], "profile": sys.argv[4]}
warm = int(sys.argv[5]) * 24
def one(lock):
    fw, _ = app.build(cfg_obj=cfg, out=Null())
    K = 256
    buf = bytearray(K * 24)
    src = io.BytesIO(data)
    done = 0
    while done < warm:
        n = src.readinto(buf)
        if not n:
            break
        fw.records(buf, n // 24, True)
        done += n
    gc.collect()
    a0 = gc.mem_alloc()
    frames = 0
    err = 0
    if lock:
        micropython.heap_lock()
    t0 = time.ticks_us()
    try:
        while True:
            n = src.readinto(buf)
            if not n:
                break
            fw.records(buf, n // 24, True)
            frames += n // 24
    except MemoryError:
        err = 1
    t1 = time.ticks_us()
    if lock:
        micropython.heap_unlock()
    return frames, time.ticks_diff(t1, t0), gc.mem_alloc() - a0, err
f, us, alloc, _ = one(False)
f2, us2, _, err = one(True)
print('{"frames":%d,"us":%d,"alloc":%d,"locked_frames":%d,"locked_us":%d,"locked_err":%d}' % (f, us, alloc, f2, us2, err))
"""


def _cantools_fps(frames, vehicle_dbc: str, limit: int = 60000) -> tuple[float, int]:
    import cantools

    db = cantools.database.load_file(str(Path(dbc_dir()) / f"{vehicle_dbc}.dbc"))
    ids = frames["arbitration_id"][:limit]
    ext = frames["is_extended"][:limit]
    dlc = frames["dlc"][:limit]
    data = frames["data"][:limit]
    known = {m.frame_id for m in db.messages}
    items = [(int(i), bytes(d[:n])) for i, e, n, d in zip(ids, ext, dlc, data) if int(i) in known]
    decode = db.decode_message
    t0 = time.perf_counter()
    for frame_id, payload in items:
        decode(frame_id, payload)
    dt = time.perf_counter() - t0
    return len(items) / dt, len(items)


def firmware_figures(vehicle: str = "nbox-turbo", cycle: str = "wltc-jp", *, profile: str = "jp-expressway",
                     micropython: str | None = None, firmware_dir=None, max_frames: int = 200000) -> dict:
    """Run both measurements on the simulator's frames; returns the figures dict."""
    from ..sim import load_cycle, load_vehicle, simulate

    if micropython is None:
        from ..runtime import micropython_command

        micropython = micropython_command()
    res = simulate(load_vehicle(vehicle), load_cycle(cycle))
    frames = {k: np.asarray(v)[:max_frames] for k, v in
              ((k, res.frames[k]) for k in ("timestamp", "arbitration_id", "is_extended", "dlc", "data"))}
    module = firmware_config(vehicle)["vehicle"]
    with tempfile.TemporaryDirectory(prefix="keidrive-bench-") as tmp:
        rec = Path(tmp) / "frames.bin"
        rec.write_bytes(record.from_frames(frames).tobytes())
        script = Path(tmp) / "bench.py"
        script.write_text(_BENCH_SCRIPT)
        cmd = [micropython, "-X", "heapsize=32M", str(script), str(firmware_dir or _firmware_dir()), str(rec), module,
               profile, str(WARMUP)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"firmware bench failed: {proc.stdout[-1000:]}{proc.stderr[-1000:]}")
        mp = json.loads(proc.stdout.strip().splitlines()[-1])
    firmware_fps = mp["frames"] / (mp["us"] / 1e6)
    cantools_fps, cantools_frames = _cantools_fps(frames, module)
    return {
        "firmware_fps": round(firmware_fps),
        "cantools_fps": round(cantools_fps),
        "ratio": round(firmware_fps / cantools_fps, 2),
        "alloc_bytes_per_frame": round(mp["alloc"] / max(mp["frames"], 1), 3),
        "heap_locked_ok": mp["locked_err"] == 0 and mp["locked_frames"] == mp["frames"],
        "frames": mp["frames"],
        "cantools_frames": cantools_frames,
        "vehicle": vehicle,
        "cycle": cycle,
        "method": "firmware: Firmware.records over preloaded records in MicroPython unix, ticks_us around processing "
                  "only (after %d warm-up frames), status lines to a null sink; cantools: decode_message on CPython "
                  "over the same frames (first %d known-id frames)" % (WARMUP, cantools_frames),
    }
