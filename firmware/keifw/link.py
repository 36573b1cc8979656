"""Frame records over a byte link that can lose or gain a byte (a UART).

The host marks every 24-byte record (keifw/record.py) with a sync byte in
byte 14 and a CRC-8/SAE-J1850 of the record's other 23 bytes in byte 15
(both reserved, and ignored by the scanner). ``FramedReader`` hands the
firmware only whole records whose sync, check, flags and DLC hold: after a
lost or stray byte it slides one byte at a time until a record checks out
again, and counts the frames the gap cost in ``Firmware.lost_frames``
(reported in the status and trip lines).

It works in place, in the caller's block buffer, so a clean stream costs
one check per record and no copy. Nothing is allocated per read (proven
under ``micropython.heap_lock()`` by tests/test_target_heap.py): no
memoryview or slice is taken; a record cut by the end of a read waits in
``tail`` and goes in front of the next read by a viper copy, the read
itself landing behind it through MicroPython's ``readinto(buf, nbytes)``.
"""

import gc

import micropython
from micropython import const

from . import record

SYNC = const(0xA5)
OFF_SYNC = const(14)
OFF_CHECK = const(15)
# flags bits no record carries (it may: extended, remote, error, control)
_FLAGS_RESERVED = const(0x78)


def _crc_table():
    """CRC-8/SAE-J1850 (poly 0x1d, init 0xff, xorout 0xff), as the frames' own checksums."""
    table = bytearray(256)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D if crc & 0x80 else crc << 1) & 0xFF
        table[byte] = crc
    return bytes(table)


CRC_TABLE = _crc_table()


@micropython.viper
def _compact(buf: ptr8, total: int, table: ptr8, st: ptr32) -> int:
    """Keep the valid records of buf[0:total] at its start, in order.

    st[0] (in/out): bytes of the current gap (skipped, not yet accounted);
    st[1] (out): frames lost in gaps that closed; st[2] (out): where the
    scan stopped (the unscanned tail, shorter than a record, starts there).
    Returns the number of records kept.
    """
    i = 0
    kept = 0
    gap = st[0]
    lost = 0
    while i + 24 <= total:
        ok = buf[i + OFF_SYNC] == SYNC and (buf[i + 12] & _FLAGS_RESERVED) == 0 and buf[i + 13] <= 8
        if ok:
            # bytes 0-14, then 16-23 (byte 15 is the check itself); crc and
            # every byte are below 256, so no masking
            crc = 0xFF
            k = i
            e = i + OFF_CHECK
            while k < e:
                crc = table[crc ^ buf[k]]
                k += 1
            k += 1
            e = i + 24
            while k < e:
                crc = table[crc ^ buf[k]]
                k += 1
            ok = (crc ^ 0xFF) == buf[i + OFF_CHECK]
        if ok:
            if gap:
                # a lost byte leaves a 23-byte gap, a stray one 25: one frame each
                lost += (gap + 12) // 24 if gap >= 12 else 1
                gap = 0
            o = kept * 24
            if o != i:
                k = 0
                while k < 24:
                    buf[o + k] = buf[i + k]
                    k += 1
            kept += 1
            i += 24
        else:
            gap += 1
            i += 1
    st[0] = gap
    st[1] = lost
    st[2] = i
    return kept


@micropython.viper
def _copy(dst: ptr8, d: int, src: ptr8, s: int, n: int):
    """dst[d:d + n] = src[s:s + n], last byte first: a move to a later
    place in the same buffer (d > s) keeps what it has not copied yet."""
    k = n
    while k > 0:
        k -= 1
        dst[d + k] = src[s + k]


class FramedReader:
    """``readinto(buf)``: whole checked records into buf (a multiple of 24
    bytes long), their byte count returned, 0 at the end of the link.

    ``rx`` is a MicroPython stream (a board's stdin, a UART, a BytesIO):
    after a read that ended inside a record it is read with
    ``readinto(buf, nbytes)``, room left in front for that record's start.
    ``rx.readinto`` may block until it has filled what it was given (a
    board's stdin does): the host ends a drive with an end-of-drive record
    and a block of padding, so the last read always completes.

    ``watch_heap`` (benches): ``heap_free_min`` is the lowest
    ``gc.mem_free()`` right after a ``gc.collect()`` at every read, i.e.
    the most the firmware held live between blocks (garbage not counted);
    ``sample_heap()`` takes one more.
    """

    def __init__(self, rx, fw, watch_heap=False):
        from array import array

        self.rx = rx
        self.fw = fw
        self.watch_heap = watch_heap
        self.heap_free_min = 1 << 30
        self.tail = bytearray(record.SIZE)  # a record cut by the end of a read
        self.tail_n = 0
        self.st = array("i", (0, 0, 0))

    def sample_heap(self):
        gc.collect()
        self.heap_free_min = min(self.heap_free_min, gc.mem_free())  # pyright: ignore[reportAttributeAccessIssue]  (MicroPython's gc)

    def readinto(self, buf):
        st = self.st
        tail = self.tail
        while True:
            c = self.tail_n
            if c:
                n = self.rx.readinto(buf, len(buf) - c)
            else:
                n = self.rx.readinto(buf)
            if not n:
                if st[0] or c:  # the link ended inside a gap or a record
                    self.fw.lost_frames += 1
                    st[0] = 0
                    self.tail_n = 0
                return 0
            if c:
                _copy(buf, c, buf, 0, n)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
                _copy(buf, 0, tail, 0, c)  # pyright: ignore[reportArgumentType]
            total = c + n
            if self.watch_heap:
                self.sample_heap()
            kept = _compact(buf, total, CRC_TABLE, st)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
            if st[1]:
                self.fw.lost_frames += st[1]
            end = st[2]
            self.tail_n = total - end
            if self.tail_n:
                _copy(tail, 0, buf, end, self.tail_n)  # pyright: ignore[reportArgumentType]
            if kept:
                return kept * 24


def run_serial(cfg, virtual=True, watch_heap=False):
    """A target whose only link is its serial REPL (the qemu board): the
    host runs this over the raw REPL, then streams framed records into
    stdin; telemetry lines go out on stdout. ``watch_heap``: an info line
    with the lowest free heap seen (FramedReader) follows the trip."""
    from . import app

    # Records are binary: a 0x03 in one must not raise KeyboardInterrupt.
    kbd_intr = getattr(micropython, "kbd_intr", None)
    if kbd_intr is not None:
        kbd_intr(-1)
    fw, _cfg = app.build(cfg_obj=cfg)
    fw.info(b'"event":', b"link_ready")  # everything is imported: the host may send
    reader = FramedReader(app.stdin_stream(), fw, watch_heap)
    try:
        app.run_stream(fw, reader, virtual)
        if watch_heap:
            reader.sample_heap()  # after the trip line too
            fw.info(b'"heap_free_min":', b"%d" % reader.heap_free_min)
    finally:
        if kbd_intr is not None:
            kbd_intr(3)
