"""The uplink's store and forward: messages on flash until the broker has them.

A message is appended to the journal before it is sent and leaves it only
once the broker has acknowledged it (PUBACK). Each class (status, event,
trip) is a queue of its own: segment files ``<letter><n>.jnl`` in
``<data>/uplink/``, each up to SEGMENT bytes (one 4 KiB erase block of the
NOR flash), messages appended to the newest and sent from the oldest. A
record is

    0xB5 | class | u16 length (LE) | payload | CRC-16/CCITT-FALSE over class, length and payload

A segment is deleted once every record in it is acknowledged; that delete is
what remembers an acknowledgement, so after a reboot the acknowledged
records of a segment still on flash go out again (the collector keeps one
copy per ``(device, boot, seq)``). Nothing is appended to a segment a
previous boot wrote: a write cut by a power loss can only leave a torn
record at its end, which the CRC catches; a bad record ends its segment's
reading (the rest of it is counted in ``corrupt``, never sent).

Bounded in bytes (``uplink_journal_kib``): a message that would pass the
bound first deletes the oldest segment of the lowest class present — status
before event before trip, never a class above the new message's — and what
was deleted is counted per class in ``dropped``; if only higher classes are
left, the new message is dropped and counted.
"""

from array import array

import micropython
from micropython import const

from .persist import _table

SEGMENT = const(4096)
MAGIC = const(0xB5)
HEADER = const(4)  # magic, class, length
TRAILER = const(2)  # CRC
N_CLASSES = const(3)
STATUS = const(0)
EVENT = const(1)
TRIP = const(2)
LETTERS = "set"

# per class words in ``q`` (array('i')), class c at c * _W
_TAIL = const(0)  # oldest segment number
_HEAD = const(1)  # newest segment number (tail > head: none)
_HEAD_LEN = const(2)  # bytes in the newest segment
_HEAD_OPEN = const(3)  # 1: written this boot, appendable
_SEND_SEG = const(4)
_SEND_OFF = const(5)
_ACK_SEG = const(6)
_ACK_OFF = const(7)
_DONE_SEG = const(8)  # the last segment the send cursor read to its end ...
_DONE_END = const(9)  # ... and where that end was
_BYTES = const(10)  # bytes of all this class's segments
_QUEUED = const(11)  # records not yet acknowledged
_DROPPED = const(12)
_W = const(13)


@micropython.viper
def crc16(buf: ptr8, o: int, n: int, c: int, table: ptr16) -> int:
    """CRC-16/CCITT-FALSE of buf[o:o+n], continued from c (0xFFFF to start)."""
    e = o + n
    while o < e:
        c = ((c << 8) & 0xFFFF) ^ table[((c >> 8) ^ buf[o]) & 0xFF]
        o += 1
    return c


class Journal:
    def __init__(self, directory, bound):
        self.dir = directory.rstrip("/")
        self.bound = bound
        self.q = array("i", bytes(4 * _W * N_CLASSES))
        self.table = _table()
        self.hdr = bytearray(HEADER)
        self.view = None  # a memoryview of the buffer read() fills, made once
        self.view_of = None
        self.corrupt = 0  # records lost to a bad CRC or length (torn writes)
        self.writes = 0  # file writes (one per message journaled)
        self.deletes = 0  # segment files deleted
        self.last_seg = 0  # where the record read() returned ends
        self.last_end = 0
        try:
            import os

            os.mkdir(self.dir)
        except OSError:
            pass
        self._scan()

    # ---- boot --------------------------------------------------------------
    def _scan(self):
        """Find each class's segments and count their valid records (boot:
        allocates). Segments without one are deleted."""
        import os

        found = ([], [], [])
        try:
            names = os.listdir(self.dir)
        except OSError:  # no file system: nothing to find (and appends will fail, counted by the uplink)
            names = ()
        for name in names:
            if len(name) > 5 and name.endswith(".jnl") and name[0] in LETTERS and name[1:-4].isdigit():
                found[LETTERS.index(name[0])].append(int(name[1:-4]))
        q = self.q
        for c in range(N_CLASSES):
            b = c * _W
            kept = []
            for k in sorted(found[c]):
                records, size = self._count(c, k, 0)
                if records == 0:
                    self._delete(c, k)
                    continue
                kept.append(k)
                q[b + _QUEUED] += records
                q[b + _BYTES] += size
                q[b + _HEAD_LEN] = size  # the newest's, in the end: read up to there
            q[b + _TAIL] = kept[0] if kept else 0
            q[b + _HEAD] = kept[-1] if kept else -1
            q[b + _HEAD_OPEN] = 0
            q[b + _SEND_SEG] = q[b + _ACK_SEG] = q[b + _TAIL]
            q[b + _DONE_SEG] = -1

    def _count(self, c, k, start):
        """(valid records, file size) of segment k of class c from ``start``."""
        try:
            f = open(self._path(c, k), "rb")
        except OSError:
            return 0, 0
        records = 0
        size = 0
        with f:
            f.seek(0, 2)
            size = f.tell()
            o = start
            while True:
                f.seek(o)
                n = self._record(f, None)
                if n < 0:
                    break
                records += 1
                o += HEADER + n + TRAILER
        return records, size

    # ---- appending -----------------------------------------------------------
    def append(self, c, rec, n):
        """Journal the n payload bytes at rec[HEADER:] as a message of class
        c (rec has HEADER bytes in front and TRAILER after the payload).
        False if it was dropped for want of room."""
        q = self.q
        b = c * _W
        size = HEADER + n + TRAILER
        if not self._room(c, size):
            q[b + _DROPPED] += 1
            return False
        rec[0] = MAGIC
        rec[1] = c
        rec[2] = n & 0xFF
        rec[3] = n >> 8
        crc = crc16(rec, 1, HEADER - 1 + n, 0xFFFF, self.table)  # pyright: ignore[reportArgumentType]
        rec[HEADER + n] = crc >> 8
        rec[HEADER + n + 1] = crc & 0xFF
        if not q[b + _HEAD_OPEN] or q[b + _HEAD_LEN] + size > SEGMENT:
            if q[b + _TAIL] > q[b + _HEAD]:  # empty: the send and ack cursors start on the new one
                q[b + _TAIL] = q[b + _SEND_SEG] = q[b + _ACK_SEG] = q[b + _HEAD] + 1
                q[b + _SEND_OFF] = q[b + _ACK_OFF] = 0
            q[b + _HEAD] += 1
            q[b + _HEAD_LEN] = 0
            q[b + _HEAD_OPEN] = 1
        with open(self._path(c, q[b + _HEAD]), "ab") as f:
            _write_all(f, rec, size)
        q[b + _HEAD_LEN] += size
        q[b + _BYTES] += size
        q[b + _QUEUED] += 1
        self.writes += 1
        return True

    def _room(self, c, size):
        """Make room for ``size`` bytes by dropping the oldest segment of
        the lowest class at or below c; False if there is none to drop."""
        q = self.q
        while self.used() + size > self.bound:
            k = 0
            while k <= c and q[k * _W + _TAIL] > q[k * _W + _HEAD]:
                k += 1
            if k > c:
                return False
            self._drop_tail(k)
        return True

    def _drop_tail(self, c):
        q = self.q
        b = c * _W
        k = q[b + _TAIL]
        start = q[b + _ACK_OFF] if q[b + _ACK_SEG] == k else 0
        records, size = self._count(c, k, start)
        self._delete(c, k)
        q[b + _DROPPED] += records
        q[b + _QUEUED] -= records
        q[b + _BYTES] -= size
        if k == q[b + _HEAD]:
            q[b + _HEAD_OPEN] = 0
            q[b + _HEAD_LEN] = 0
        q[b + _TAIL] = k + 1
        if q[b + _SEND_SEG] <= k:
            q[b + _SEND_SEG] = k + 1
            q[b + _SEND_OFF] = 0
        if q[b + _ACK_SEG] <= k:
            q[b + _ACK_SEG] = k + 1
            q[b + _ACK_OFF] = 0

    # ---- sending ---------------------------------------------------------------
    def unsent(self, c):
        """Is there a record of class c not sent since the last rewind?"""
        q = self.q
        b = c * _W
        s = q[b + _SEND_SEG]
        if s < q[b + _HEAD]:
            return True
        return s == q[b + _HEAD] and q[b + _SEND_OFF] < q[b + _HEAD_LEN] and q[b + _TAIL] <= q[b + _HEAD]

    def read(self, c, buf, o):
        """The next unsent record of class c into buf[o:] (payload, then its
        2 CRC bytes): its length, or -1 if there is none. ``last_seg`` and
        ``last_end`` say where it ends, for ack()."""
        q = self.q
        b = c * _W
        if self.view_of is not buf:
            self.view = memoryview(buf)[o:]
            self.view_of = buf
        while self.unsent(c):
            s = q[b + _SEND_SEG]
            off = q[b + _SEND_OFF]
            n = -1
            try:
                with open(self._path(c, s), "rb") as f:
                    f.seek(off)
                    n = self._record(f, self.view)
            except OSError:
                pass
            if n >= 0:
                q[b + _SEND_OFF] = off + HEADER + n + TRAILER
                self.last_seg = s
                self.last_end = q[b + _SEND_OFF]
                return n
            # the segment's end (or a missing file, or a bad record ending it)
            if n == -2:
                self.corrupt += 1
            q[b + _DONE_SEG] = s
            q[b + _DONE_END] = off
            q[b + _SEND_SEG] = s + 1
            q[b + _SEND_OFF] = 0
            if s == q[b + _HEAD]:  # a bad record in the newest: nothing more goes there
                q[b + _HEAD_OPEN] = 0
            self._settle(c)
        return -1

    def _record(self, f, view):
        """Read and check the record at f's position: its payload length, -1
        at the end of the file, -2 for a bad one. The payload and its CRC go
        into ``view``; with None into a new buffer (boot, dropping)."""
        hdr = self.hdr
        k = f.readinto(hdr)
        if not k:
            return -1
        if k < HEADER or hdr[0] != MAGIC or hdr[1] >= N_CLASSES:
            return -2
        n = hdr[2] | hdr[3] << 8
        if view is None:
            return self._check(f, n)
        if n + TRAILER > len(view):
            return -2
        if _read_all(f, view, n + TRAILER) < n + TRAILER:
            return -2
        crc = crc16(hdr, 1, HEADER - 1, 0xFFFF, self.table)  # pyright: ignore[reportArgumentType]
        crc = crc16(view, 0, n, crc, self.table)  # pyright: ignore[reportArgumentType]
        if crc != (view[n] << 8 | view[n + 1]):
            return -2
        return n

    def _check(self, f, n):
        """The payload of the record whose header was just read, checked
        (allocates: boot, dropping)."""
        if n > SEGMENT:
            return -2
        data = f.read(n + TRAILER)
        if data is None or len(data) < n + TRAILER:
            return -2
        crc = crc16(self.hdr, 1, HEADER - 1, 0xFFFF, self.table)  # pyright: ignore[reportArgumentType]
        crc = crc16(data, 0, n, crc, self.table)  # pyright: ignore[reportArgumentType]
        return n if crc == (data[n] << 8 | data[n + 1]) else -2

    def rewind(self):
        """The connection went down: everything not acknowledged goes again."""
        q = self.q
        for c in range(N_CLASSES):
            b = c * _W
            q[b + _SEND_SEG] = q[b + _ACK_SEG]
            q[b + _SEND_OFF] = q[b + _ACK_OFF]
            q[b + _DONE_SEG] = -1

    def ack(self, c, seg, end):
        """The broker has every record of class c up to ``end`` of segment ``seg``."""
        q = self.q
        b = c * _W
        if seg < q[b + _ACK_SEG] or (seg == q[b + _ACK_SEG] and end <= q[b + _ACK_OFF]):
            return  # a segment dropped since, or a repeated acknowledgement
        q[b + _ACK_SEG] = seg
        q[b + _ACK_OFF] = end
        q[b + _QUEUED] -= 1
        self._settle(c)

    def _settle(self, c):
        """Delete the segments the acknowledgements have passed: those
        before the ack cursor's, the one read to its end and acknowledged
        to it, and the newest once everything in it is acknowledged."""
        q = self.q
        b = c * _W
        a = q[b + _ACK_SEG]
        if q[b + _DONE_SEG] == a and q[b + _DONE_END] == q[b + _ACK_OFF]:
            a += 1  # acknowledged to the end
            q[b + _ACK_SEG] = a
            q[b + _ACK_OFF] = 0
            q[b + _DONE_SEG] = -1
        if a == q[b + _HEAD] and q[b + _ACK_OFF] >= q[b + _HEAD_LEN]:
            a += 1  # the newest, all of it: the class is empty
            q[b + _ACK_SEG] = a
            q[b + _ACK_OFF] = 0
            q[b + _HEAD_OPEN] = 0
            q[b + _HEAD_LEN] = 0
            if q[b + _SEND_SEG] < a:
                q[b + _SEND_SEG] = a
                q[b + _SEND_OFF] = 0
        while q[b + _TAIL] < a and q[b + _TAIL] <= q[b + _HEAD]:
            k = q[b + _TAIL]
            q[b + _BYTES] -= self._size(c, k)
            self._delete(c, k)
            q[b + _TAIL] = k + 1
        if q[b + _TAIL] > q[b + _HEAD]:  # nothing left: the counts start again
            q[b + _BYTES] = 0
            q[b + _QUEUED] = 0

    # ---- figures -------------------------------------------------------------
    def used(self):
        q = self.q
        return q[_BYTES] + q[_W + _BYTES] + q[2 * _W + _BYTES]

    def queued(self, c=-1):
        q = self.q
        if c >= 0:
            return q[c * _W + _QUEUED]
        return q[_QUEUED] + q[_W + _QUEUED] + q[2 * _W + _QUEUED]

    def dropped(self, c):
        return self.q[c * _W + _DROPPED]

    # ---- files -------------------------------------------------------------
    def _path(self, c, k):
        return "%s/%s%d.jnl" % (self.dir, LETTERS[c], k)

    def _size(self, c, k):
        import os

        try:
            return os.stat(self._path(c, k))[6]
        except OSError:
            return 0

    def _delete(self, c, k):
        import os

        try:
            os.remove(self._path(c, k))
            self.deletes += 1
        except OSError:
            pass


def _write_all(f, buf, n):
    from .compat import MICROPYTHON

    if MICROPYTHON:
        o = 0
        while o < n:
            o += f.write(memoryview(buf)[o:n]) if o else f.write(buf, n)
    else:
        f.write(memoryview(buf)[:n])


def _read_all(f, view, n):
    from .compat import MICROPYTHON

    if MICROPYTHON:
        return f.readinto(view, n) or 0
    return f.readinto(view[:n]) or 0
