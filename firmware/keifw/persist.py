"""Trip persistence that survives a power cut: two alternating slot files.

Each save writes the *older* slot completely (header, payload, CRC), so at
any instant at least one slot holds a complete earlier save. A slot is

    magic "KDT1" | u32 sequence | u16 payload length | payload | u16 CRC-16

(CRC-16/CCITT-FALSE over everything before it). load() reads both slots,
drops any with a bad magic, length or CRC (a torn write), and takes the
valid one with the higher sequence number: at most one save interval is lost
and a corrupt load is impossible short of a CRC collision. One save is one
file write of about 1.1 kB; at the default save_interval_s = 60 that is
60 writes per hour (see docs/firmware.md for the flash budget).

A CRC only proves the slot is what some firmware wrote, not that its fields
make sense to this one (an older build, a bug): every loaded field is bounded
before it is used. Figures out of range start a fresh trip; a warning log out
of range is dropped and the figures kept. ``rejected`` says which, for the
telemetry.
"""

import struct
from array import array

from . import alerts as _alerts
from . import economy as _econ

MAGIC = b"KDT1"
CHUNK = 256  # bytes per flash write: a NOR flash page
SLOTS = ("trip_a.bin", "trip_b.bin")

# Accumulators stay inside the 31-bit small ints the loop checks; a
# remainder is below its divisor, and every divisor is below 2**29.
ACC_MAX = 0x3FFFFFFF
REMAINDER_MAX = 0x1FFFFFFF

_CRC_TABLE = None


def _table():
    global _CRC_TABLE
    if _CRC_TABLE is None:
        t = array("H", bytes(512))
        for b in range(256):
            c = b << 8
            for _ in range(8):
                c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
            t[b] = c
        _CRC_TABLE = t
    return _CRC_TABLE


def crc16(buf, n):
    t = _table()
    c = 0xFFFF
    for k in range(n):
        c = ((c << 8) & 0xFFFF) ^ t[(c >> 8) ^ buf[k]]
    return c


def _check_figures(acc):
    """Why saved accumulators cannot be this firmware's, or None."""
    for i in range(len(acc)):
        top = REMAINDER_MAX if i < _econ.TICKS and i % 2 else ACC_MAX
        if not 0 <= acc[i] <= top:
            return "accumulator %d = %d out of 0..%d" % (i, acc[i], top)
    ticks = acc[_econ.TICKS]
    for i in (_econ.IDLE_TICKS, _econ.MOVING_TICKS, _econ.ECO_N):
        if acc[i] > ticks:
            return "accumulator %d = %d exceeds the trip's %d ticks" % (i, acc[i], ticks)
    # eco samples are 0..100 points (written to stay a small int on a board)
    if (acc[_econ.ECO_SUM] + 99) // 100 > acc[_econ.ECO_N]:
        return "eco sum %d exceeds 100 points per sample" % acc[_econ.ECO_SUM]
    return None


def _check_log(log_n, log_total, log, ticks):
    """Why a saved warning log cannot be this firmware's, or None."""
    if not 0 <= log_n <= _alerts.MAX_LOG or not log_n <= log_total <= ACC_MAX:
        return "count %d of %d out of range" % (log_n, log_total)
    for j in range(log_n):
        kind, level, start, end = log[j * 4], log[j * 4 + 1], log[j * 4 + 2], log[j * 4 + 3]
        if not 0 <= kind < _alerts.N_KINDS or not 1 <= level < len(_alerts.LEVELS):
            return "entry %d: kind %d, level %d out of range" % (j, kind, level)
        if not 0 <= start <= ticks or not (end == -1 or start <= end <= ticks):
            return "entry %d: %d..%d outside the trip's 0..%d ticks" % (j, start, end, ticks)
    return None


class TripStore:
    def __init__(self, directory, n_acc):
        self.dir = directory.rstrip("/")
        self.n_acc = n_acc
        # payload: accumulators, log_n, log_total, log entries
        self.payload_len = 4 * n_acc + 8 + 4 * 4 * _alerts.MAX_LOG
        self.size = 4 + 4 + 2 + self.payload_len + 2
        self.buf = bytearray(self.size)
        mv = memoryview(self.buf)
        self.chunks = [mv[o:o + CHUNK] for o in range(0, self.size, CHUNK)]
        self.seq = 0
        self.next_slot = 0
        self.writes = 0
        self.rejected = None  # what the last load refused, for the telemetry

    def _path(self, k):
        return self.dir + "/" + SLOTS[k]

    def _read(self, k):
        try:
            with open(self._path(k), "rb") as f:
                data = f.read()
        except OSError:
            return None
        n = self.size
        if len(data) != n or data[0:4] != MAGIC:
            return None
        if struct.unpack_from("<H", data, 8)[0] != self.payload_len:
            return None
        if crc16(data, n - 2) != struct.unpack_from("<H", data, n - 2)[0]:
            return None
        return data

    def load(self, acc, alerts):
        """Restore the newest valid slot into acc / alerts. True if one was found."""
        best = None
        best_seq = -1
        best_k = 0
        for k in range(2):
            data = self._read(k)
            if data is not None:
                seq = struct.unpack_from("<I", data, 4)[0]
                if seq > best_seq:
                    best, best_seq, best_k = data, seq, k
        self.rejected = None
        if best is None:
            return False
        self.seq = best_seq
        self.next_slot = 1 - best_k
        o = 10
        saved = [struct.unpack_from("<i", best, o + 4 * i)[0] for i in range(self.n_acc)]
        problem = _check_figures(saved)
        if problem is not None:
            self.rejected = "trip store: saved %s; starting a fresh trip" % problem
            return False
        for i in range(self.n_acc):
            acc[i] = saved[i]
        o += 4 * self.n_acc
        log_n, log_total = struct.unpack_from("<ii", best, o)
        o += 8
        log = [struct.unpack_from("<i", best, o + 4 * i)[0] for i in range(4 * _alerts.MAX_LOG)]
        ticks = acc[_econ.TICKS]
        problem = _check_log(log_n, log_total, log, ticks)
        if problem is not None:
            self.rejected = "trip store: saved warning log %s; trip figures restored, the log dropped" % problem
            return True
        alerts.log_n, alerts.log_total = log_n, log_total
        for i in range(4 * _alerts.MAX_LOG):
            alerts.log[i] = log[i]
        # a warning open at the power cut ends at the saved trip time
        for j in range(log_n):
            if alerts.log[j * 4 + 3] < 0:
                alerts.log[j * 4 + 3] = ticks
        return True

    def save(self, acc, alerts, between=None):
        """Write the older slot. ``between()`` (the CAN port's drain) runs
        before the write and after each CHUNK bytes reach the flash, so
        receive waits at most one chunk's program time (see docs/firmware.md)."""
        buf = self.buf
        self.seq = (self.seq + 1) & 0x3FFFFFFF
        buf[0:4] = MAGIC
        struct.pack_into("<IH", buf, 4, self.seq, self.payload_len)
        o = 10
        for i in range(self.n_acc):
            struct.pack_into("<i", buf, o + 4 * i, acc[i])
        o += 4 * self.n_acc
        struct.pack_into("<ii", buf, o, alerts.log_n, alerts.log_total)
        o += 8
        for i in range(4 * _alerts.MAX_LOG):
            struct.pack_into("<i", buf, o + 4 * i, alerts.log[i])
        n = self.size
        struct.pack_into("<H", buf, n - 2, crc16(buf, n - 2))
        path = self._path(self.next_slot)
        if between is not None:
            between()
        with open(path, "wb") as f:
            for chunk in self.chunks:
                f.write(chunk)
                try:
                    f.flush()
                except (AttributeError, OSError):
                    pass
                if between is not None:
                    between()
        try:
            import os

            if hasattr(os, "sync"):
                os.sync()
        except (ImportError, OSError):
            pass
        self.next_slot = 1 - self.next_slot
        self.writes += 1

    def clear(self):
        import os

        for k in range(2):
            try:
                os.remove(self._path(k))
            except OSError:
                pass
