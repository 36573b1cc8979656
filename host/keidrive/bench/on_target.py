# MicroPython, run on the qemu board by keidrive.bench.target (not imported on
# the host). The host sends N framed stream records (a window of the drive)
# after the line "ready"; each measurement below runs on them in RAM and the
# figures go back as one JSON line. With -icount shift=0 the board's
# ticks_us() advances 1 us per 1000 instructions, so
# ticks_diff x 1000 / frames is instructions per frame, the same every run.
# A new figure: one function named instr_per_frame_WHAT taking (src, stamps,
# n) — the records in a BytesIO, their timestamps, their count — returning
# instructions per frame, and its name in MEASURES; the bench prints it.
import gc
import io
import sys
import time

import micropython
from keifw import app, link
from keifw.canport import StreamPort
from keifw.record import CONTROL_UART

CFG = {}  # the host puts the firmware config here
N = 0  # and the number of records it sends
WARMUP = 256  # records run before measuring: the first tick, lazily filled tables
# MicroPython's map lookup cache (MICROPY_OPT_MAP_LOOKUP_CACHE, on in this
# build as in the ESP32 and RP2040 ports) is indexed by address, so the same
# path costs a few percent more or less with the heap laid out differently:
# each figure is the mean of this many runs, each on a freshly built firmware
REPEATS = 3


class Null:
    def write(self, b, n=None):
        return n


class Sink:
    lost_frames = 0


def _instr(t0, t1, frames):
    return time.ticks_diff(t1, t0) * 1000 // frames


def _receive():
    """The records, framed as they came, in one preallocated BytesIO (the
    board's RAM holds one copy), and each record's 30-bit timestamp."""
    from array import array

    data = io.BytesIO(N * 24)
    stamps = array("i", bytes(4 * N))
    buf = bytearray(6144)
    mv = memoryview(buf)
    reader = link.FramedReader(sys.stdin.buffer, Sink())
    got = 0
    while got < N:
        k = reader.readinto(mv[:min(6144, (N - got) * 24)]) // 24
        for j in range(k):
            o = j * 24
            stamps[got + j] = buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | ((buf[o + 3] & 0x3F) << 24)
        data.write(mv[:k * 24])
        got += k
    return data, stamps


ALLOC = [0]  # the most any path allocated per frame


def _alloc(a0, frames):
    ALLOC[0] = max(ALLOC[0], (gc.mem_alloc() - a0) / frames)


def instr_per_frame_stream(src, stamps, n):
    """Firmware.records over blocks of records (the SIL and stream path)."""
    fw, _ = app.build(cfg_obj=CFG, out=Null())
    buf = bytearray(256 * 24)
    src.seek(0)
    src.readinto(buf)
    fw.records(buf, WARMUP, True)
    gc.collect()
    a0 = gc.mem_alloc()
    frames = 0
    t0 = time.ticks_us()
    while True:
        k = src.readinto(buf)
        if not k:
            break
        fw.records(buf, k // 24, True)
        frames += k // 24
    t1 = time.ticks_us()
    _alloc(a0, frames)
    return _instr(t0, t1, frames)


def _board(src, stamps, n):
    """A fresh firmware and a StreamPort over the records, run_port through
    the warm-up records."""
    fw, _ = app.build(cfg_obj=CFG, out=Null())

    def clock():
        return stamps[min(src.seek(0, 1) // 24, n - 1)]

    app.now_us = clock
    src.seek(0)
    port = StreamPort(src)
    app.run_port(fw, port, lambda: src.seek(0, 1) >= WARMUP * 24)
    gc.collect()
    return fw, port


def instr_per_frame_board(src, stamps, n):
    """app.run_port: the port polled, the clock, frames (a StreamPort over the
    records in RAM; the clock is each pass's next record's time, so ticks and
    status lines fall as in the drive)."""
    fw, port = _board(src, stamps, n)

    def last():
        # up to the last record, not the end of the stream: the pass that
        # finds nothing waits a millisecond, the board's idle time, not work
        return src.seek(0, 1) >= n * 24

    t0 = time.ticks_us()
    app.run_port(fw, port, last)
    t1 = time.ticks_us()
    # The allocation, in a second run off the clock: gc.mem_alloc() at the
    # first pass and at the last, so run_port's start-up (its Frame, bound
    # methods) and its call state (MicroPython takes it from the heap on
    # entry and frees it on return), once per boot, are not counted per frame.
    fw, port = _board(src, stamps, n)
    marks = [-1, 0]

    def stop():
        a = gc.mem_alloc()
        if marks[0] < 0:
            marks[0] = a
        marks[1] = a
        return port.eof

    app.run_port(fw, port, stop)
    ALLOC[0] = max(ALLOC[0], (marks[1] - marks[0]) / (n - WARMUP))
    return _instr(t0, t1, n - WARMUP)


def instr_per_frame_transport(src, stamps, n):
    """What link.FramedReader adds to a plain stream read (sync, check, bookkeeping)."""
    buf = bytearray(256 * 24)
    src.seek(0)
    t0 = time.ticks_us()
    while src.readinto(buf):
        pass
    t1 = time.ticks_us()
    src.seek(0)
    reader = link.FramedReader(src, Sink())
    t2 = time.ticks_us()
    while reader.readinto(buf):
        pass
    t3 = time.ticks_us()
    return (time.ticks_diff(t3, t2) - time.ticks_diff(t1, t0)) * 1000 // n


# A GNSS module's sentences (Alabama, US 231): the same epoch over and over
# (the same time of day is not stale), so every fix is taken and the
# jurisdiction's look once a second finds the car where it was.
GGA = b"$GNGGA,150405.00,3443.82400,N,08635.16600,W,1,09,0.92,190.0,M,-30.0,M,,*76\r\n"
RMC = b"$GNRMC,150405.00,A,3443.82400,N,08635.16600,W,47.786,180.00,020626,,,A*53\r\n"
VTG = b"$GNVTG,180.00,T,,M,47.786,N,88.500,K,A*25\r\n"


def _uart(buf, m, t, data):
    """data as UART records (record.CONTROL_UART) stamped t, from record m of buf; the record after them."""
    for k in range(0, len(data), 8):
        o = m * 24
        for i in range(24):
            buf[o + i] = 0
        buf[o] = t & 0xFF
        buf[o + 1] = (t >> 8) & 0xFF
        buf[o + 2] = (t >> 16) & 0xFF
        buf[o + 3] = (t >> 24) & 0x3F
        buf[o + 8] = CONTROL_UART
        buf[o + 12] = 0x80
        c = min(8, len(data) - k)
        buf[o + 13] = c
        for i in range(c):
            buf[o + 16 + i] = data[k + i]
        m += 1
    return m


def _stream_gps(src, stamps, n, sentences):
    """Firmware.records with the GNSS module's sentences among the frames,
    as UART records (gps on: its reading every tick, the jurisdiction looked
    at once a second); ``sentences(k)`` the bytes of epoch k (100 ms apart).
    The window twice: the first pass finds the jurisdiction (its dwell is
    3 s), the second is timed, steady. Each block is filled off the clock
    with the frames and the sentences due among them; per CAN frame."""
    cfg = dict(CFG)
    cfg["gps"] = True
    fw, _ = app.build(cfg_obj=cfg, out=Null())
    buf = bytearray(256 * 24)
    rec = bytearray(24)
    spent = 0
    frames = 0
    grown = 0
    for timed in (False, True):
        src.seek(0)
        epoch = stamps[0]
        k = 0
        j = 0
        while j < n:
            m = 0
            can = 0
            while j < n and m < 256 - 24:  # room for a second's sentences (23 records) before a frame
                while time.ticks_diff(stamps[j], epoch) >= 0:
                    m = _uart(buf, m, epoch, sentences(k))
                    epoch = (epoch + 100000) & 0x3FFFFFFF
                    k += 1
                src.readinto(rec)
                buf[m * 24:m * 24 + 24] = rec
                m += 1
                can += 1
                j += 1
            if not timed:
                fw.records(buf, m, True)
                continue
            a = gc.mem_alloc()
            t0 = time.ticks_us()
            fw.records(buf, m, True)
            spent += time.ticks_diff(time.ticks_us(), t0)
            grown += gc.mem_alloc() - a
            frames += can
    ALLOC[0] = max(ALLOC[0], grown / frames)
    return spent * 1000 // frames


def instr_per_frame_stream_gps(src, stamps, n):
    """The stream path with a GNSS module at 10 Hz: an RMC every 100 ms of
    the drive's time, GGA and VTG once a second (what 9600 baud carries)."""
    return _stream_gps(src, stamps, n, lambda k: RMC if k % 10 else GGA + RMC + VTG)


def instr_per_frame_stream_gps_1hz(src, stamps, n):
    """The same at 1 Hz (the modules' default): GGA, RMC and VTG once a second."""
    return _stream_gps(src, stamps, n, lambda k: b"" if k % 10 else GGA + RMC + VTG)


def instr_per_sentence_nmea(src, stamps, n):
    """The reader (keifw.nmea) over 90 sentences in RAM (GGA, RMC, VTG by
    turns), as a board reads a full UART buffer: per sentence."""
    from keifw import nmea

    r = nmea.Reader()
    data = (GGA + RMC + VTG) * 30
    r.feed(data, 0, len(data), 1000)
    t0 = time.ticks_us()
    r.feed(data, 0, len(data), 2000)
    t1 = time.ticks_us()
    return time.ticks_diff(t1, t0) * 1000 // 90


MEASURES = (instr_per_frame_stream, instr_per_frame_board, instr_per_frame_transport, instr_per_frame_stream_gps,
            instr_per_frame_stream_gps_1hz, instr_per_sentence_nmea)


def main():
    micropython.kbd_intr(-1)
    print("ready")
    src, stamps = _receive()
    micropython.kbd_intr(3)
    # (name, value) pairs in MEASURES order: a MicroPython dict keeps no order
    figures = []
    for measure in MEASURES:
        total = 0
        for _ in range(REPEATS):
            gc.collect()
            total += measure(src, stamps, N)
        figures.append((measure.__name__, total // REPEATS))
    figures.append(("alloc_bytes_per_frame", ALLOC[0]))
    figures.append(("records", N))
    print("figures [" + ", ".join(f'["{name}", {value}]' for name, value in figures) + "]")


main()
