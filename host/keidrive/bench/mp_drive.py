"""MicroPython side of the firmware measurements: one whole drive through the
real firmware on the target (unix ports, the qemu Cortex-M build).

Not imported by the host: it runs inside MicroPython, with ``keifw`` on
sys.path, as ``import mp_drive; mp_drive.run(...)`` (``micropython -c`` or
``mpremote mount DIR exec``). Records come from a file of 24-byte stream
records, read a chunk at a time outside the measured and heap-locked part
(a file over the mpremote mount allocates as it reads); the firmware then
processes the chunk, frames already in RAM, under ``micropython.heap_lock()``:

* ``path="stream"``: ``Firmware.records`` over the chunk (the SIL path);
* ``path="board"``: ``app.run_port`` with a port whose ``read`` hands out
  the waiting frames, as a controller's receive queue on a loaded bus:
  per pass the clock (the next frame's own time), then up to a block of
  frames scanned in one call.

Telemetry lines go to a sink that hashes them (allocation-free), so runs on
different targets compare line for line. ``time.ticks_us`` brackets the
processing only: on qemu with ``-icount shift=0`` it advances one us per
1000 instructions, so ``us * 1000 / frames`` is instructions per frame.

Prints one line ``{"type":"drive", ...}`` (frames, err, lines, hash, us,
heap_free_boot, heap_free_min, alloc_bytes: stream route, the run unlocked
with ``lock=False``; -1 for the board route) and then the trip line.
"""

import gc
import sys
import time

import micropython
from keifw import app
from keifw.record import SIZE


@micropython.viper
def _hash(h: int, buf: ptr8, n: int) -> int:
    k = 0
    while k < n:
        h = ((h * 31) + buf[k]) & 0x3FFFFFF
        k += 1
    return h


@micropython.viper
def _copy(dst: ptr8, src: ptr8, o: int, n: int):
    k = 0
    while k < n:
        dst[k] = src[o + k]
        k += 1


class HashSink:
    def __init__(self):
        self.h = 0
        self.on = True  # False: the trip line goes to stdout instead

    def write(self, b, n=None):
        if n is None:
            n = len(b)
        if self.on:
            self.h = _hash(self.h, b, n)
        else:
            sys.stdout.write(bytes(b[:n]).decode())
        return n


class ChunkPort:
    """A port whose frames are the records of ``src``, read a chunk at a
    time, on a bus at full load: frames are always waiting (each pass of
    run_port drains up to a block of them), and the board's clock reads the
    next waiting frame's timestamp.
    The chunk reads run with the heap unlocked and their time is taken out
    of the measurement (``io_us``)."""

    def __init__(self, src, buf, lock):
        self.src = src
        self.buf = buf
        self.lock = lock
        self.locked = False
        self.j = 0
        self.n = 0
        self.t = 0
        self.eof = False
        self.io_us = 0
        self.frames = 0
        self.free_min = gc.mem_free()

    def _refill(self):
        # the heap is locked from the first frame on (after run_port's own
        # start-up) to the end of the records, except here
        t0 = time.ticks_us()
        if self.locked:
            micropython.heap_unlock()
            self.locked = False
        f = gc.mem_free()
        self.free_min = min(self.free_min, f)
        self.n = self.src.readinto(self.buf) // SIZE
        self.j = 0
        self.frames += self.n
        self.eof = self.n == 0
        if self.lock and not self.eof:
            micropython.heap_lock()
            self.locked = True
        self.io_us += time.ticks_diff(time.ticks_us(), t0)

    def _stamp(self, j):
        b = self.buf
        o = j * SIZE
        return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | ((b[o + 3] & 0x3F) << 24)

    def now(self):
        """The clock: the next frame's time (a board idles until it arrives)."""
        if self.j >= self.n and not self.eof:
            self._refill()
        if self.j < self.n:
            self.t = self._stamp(self.j)
        return self.t

    def done(self):
        return self.eof

    def read(self, block):
        """Up to a block of the waiting frames, copied as they are (stream records)."""
        j = self.j
        k = min(self.n - j, len(block) // SIZE)
        _copy(block, self.buf, j * SIZE, k * SIZE)
        self.j = j + k
        return k

    def send(self, can_id, extended, buf, n):
        return False

    def state(self):
        return 0

    def restart(self):
        pass


def run(records_path, vehicle, profile, path="stream", lock=True, chunk=64):
    gc.collect()
    free_boot = gc.mem_free()
    sink = HashSink()
    buf = bytearray(chunk * SIZE)
    src = open(records_path, "rb")  # noqa: SIM115  (read to the end of the drive)
    port = ChunkPort(src, buf, lock) if path == "board" else None
    if port is not None:
        app.now_us = port.now  # the board's clock: the frames' own time
    fw, _ = app.build(cfg_obj={"vehicle": vehicle, "profile": profile}, out=sink, port=port)
    fw.debug_bounds = lock  # every tick: accumulators and clock inside the 31-bit range
    frames = 0
    us = 0
    err = "none"
    gc.collect()
    free_min = gc.mem_free()
    alloc = 0
    while True:
        if port is None:
            n = src.readinto(buf) // SIZE
            if not n:
                break
            f = gc.mem_free()
            free_min = min(free_min, f)
        a1 = gc.mem_alloc()
        if lock and port is None:
            micropython.heap_lock()
        t0 = time.ticks_us()
        try:
            if port is None:
                fw.records(buf, n, True)
            else:
                app.run_port(fw, port, port.done)
        except MemoryError:
            err = "MemoryError"
        except OverflowError:
            err = "OverflowError"
        t1 = time.ticks_us()
        if port is not None and port.locked or lock and port is None:  # stopped by an error
            micropython.heap_unlock()
        us += time.ticks_diff(t1, t0)
        alloc += gc.mem_alloc() - a1
        if port is not None:
            frames = port.frames
            us -= port.io_us
            free_min = min(free_min, port.free_min)
            break
        frames += n
        if err != "none":
            break
    if port is not None:
        alloc = -1  # the board's chunk reads happen inside its run: no figure
    print('{"type":"drive","path":"%s","frames":%d,"err":"%s","lines":%d,"hash":%d,"us":%d,'  # noqa: UP031  (MicroPython)
          '"heap_free_boot":%d,"heap_free_min":%d,"alloc_bytes":%d}'
          % (path, frames, err, fw.w.lines, sink.h, us, free_boot, free_min, alloc))
    sink.on = False
    fw.finish()
