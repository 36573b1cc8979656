"""The board loop (app.run_port) over a StreamPort, in the real MicroPython unix port.

A StreamPort hands whole blocks of records to the scanner (``read``); a
pipe's reads end anywhere, inside a record too. Fed the same records in
reads cut at random places, the loop must see every frame and judge it as
when fed whole blocks (the same counters; the figures differ only by the
pass times frames are stamped with), and allocate nothing while it runs.
"""

import json
from pathlib import Path

import pytest
from conftest import micropython_or_skip, run_micropython
from keidrive.drive.harness import firmware_config
from keidrive.io import record
from keidrive.paths import firmware_dir
from keidrive.sim import load_cycle, load_vehicle, simulate

micropython_or_skip()

BOARD = r"""
import sys, json, micropython
from array import array
sys.path.insert(0, sys.argv[1])
from keifw import app
from keifw.canport import StreamPort

class Lines:
    # kept only once the heap is free again: the trip line
    def __init__(self):
        self.out = []
        self.on = False
    def write(self, b, n=None):
        if n is None:
            n = len(b)
        if self.on:
            self.out.append(bytes(b[:n]))
        return n

class Reads:
    # a file whose reads end where a seeded generator says (1 byte to a
    # whole block); views[n]: the block's first n bytes, made before the
    # heap is locked
    def __init__(self, path, cut, block):
        self.f = open(path, "rb")
        self.cut = cut
        self.seed = 1
        mv = memoryview(block)
        self.views = [mv[:n] for n in range(len(block) + 1)]
        self.pos = 0
    def readinto(self, buf):
        n = len(buf)
        v = buf
        if self.cut:
            self.seed = (self.seed * 75 + 74) % 65537  # small ints on a 32-bit port too
            if n == len(self.views) - 1:
                v = self.views[1 + self.seed % n]
            elif self.seed & 1:
                # the port completing a cut record (its views of one record
                # buffer, all from its start): one byte of what it asked
                v = self.one
        k = self.f.readinto(v)
        self.pos += k
        return k

cfg = json.loads(sys.argv[3])
out = Lines()
fw, _ = app.build(cfg_obj=cfg, out=out)
rx = Reads(sys.argv[2], sys.argv[4] == "cut", fw.block)
size = int(sys.argv[5])
stamps = array("i", bytes(4 * size))  # each record's 30-bit time
with open(sys.argv[2], "rb") as f:
    rec = bytearray(24)
    for j in range(size):
        f.readinto(rec)
        stamps[j] = rec[0] | (rec[1] << 8) | (rec[2] << 16) | ((rec[3] & 0x3F) << 24)

def clock():
    # the board's clock: the time of the next record not yet read
    return stamps[min(rx.pos // 24, size - 1)]

app.now_us = clock
port = StreamPort(rx)
rx.one = memoryview(port.rec)[:1]
# warm-up: the first 2000 records with the heap free
app.run_port(fw, port, lambda: rx.pos >= 2000 * 24)
locked = [False]

def stop():
    # the heap is locked from the first pass on, after run_port's own start-up
    if not locked[0]:
        micropython.heap_lock()
        locked[0] = True
    return rx.pos >= size * 24

try:
    app.run_port(fw, port, stop)
    err = "none"
except MemoryError:
    err = "MemoryError"
micropython.heap_unlock()
out.on = True
fw.finish()
# (a long line, the trip's, may come in more than one write)
print(json.dumps({"err": err, "frames": fw.frames, "lines": b"".join(out.out).decode().splitlines()}))
"""


def _board(data: Path, cfg: dict, mode: str, size: int) -> dict:
    return json.loads(run_micropython(BOARD, str(firmware_dir()), str(data), json.dumps(cfg), mode, str(size),
                                      timeout=300).strip().splitlines()[-1])


def test_reads_cut_anywhere_give_the_same_trip_without_allocating(tmp_path):
    recs = record.from_frames(simulate(load_vehicle("nbox-turbo"), load_cycle("us06")).frames)
    recs = recs[recs["timestamp_us"] < 120_000_000]  # two minutes: accelerations, highway, warnings
    data = tmp_path / "drive.bin"
    data.write_bytes(recs.tobytes())
    cfg = firmware_config("nbox-turbo", "jp-expressway")
    whole = _board(data, cfg, "whole", len(recs))
    cut = _board(data, cfg, "cut", len(recs))
    assert whole["err"] == "none" and cut["err"] == "none"
    assert whole["frames"] == cut["frames"] == len(recs)
    a, b = (json.loads(run["lines"][-1]) for run in (whole, cut))
    # every frame seen and judged alike; only the pass times the frames are
    # stamped with differ (a pass takes whatever a read brought)
    for key in ("frames", "bad_frames", "unknown_frames", "skipped_frames", "lost_frames", "implausible_frames"):
        assert a[key] == b[key], key
    assert a["lost_frames"] == 0 and a["bad_frames"] == 0
    for key in ("distance_km", "fuel_l"):
        assert b[key] == pytest.approx(a[key], rel=0.002), key
