"""Per-message validity, modelled on opendbc's CANParser.

A message is valid after 2 good frames in a row; it turns invalid after
``BAD_LIMIT`` bad frames in a row (CHECKSUM mismatch, COUNTER not advancing
by one, wrong DLC) or when no frame arrived for 10x its DBC cycle time
(1 s for a message without a cycle time). Frames with a bad CHECKSUM are not
decoded at all. Lost/restored events are reported at the next 10 Hz tick by
comparing with ``reported``.

All per-message state lives in one ``array('i')`` (STRIDE words per
message) so the per-frame bookkeeping is one viper function.
"""

from array import array

try:
    from micropython import const, viper
except ImportError:  # CPython: plain Python, annotations are just names
    def const(x):
        return x

    def viper(f):
        return f

    ptr32 = ptr8 = None

BAD_LIMIT = const(5)
GOOD_LIMIT = const(2)
TIMEOUT_CYCLES = const(10)

STRIDE = const(13)
LAST_T = const(0)
CARRY = const(1)
LAST_CNT = const(2)
CNT_SLOT = const(3)
CNT_MASK = const(4)
TIMEOUT = const(5)
SEEN = const(6)
VALID = const(7)
BAD_RUN = const(8)
GOOD_RUN = const(9)
BAD_TOTAL = const(10)  # per message
RESYNC = const(11)
LOST = const(12)  # latched when VALID drops, cleared by the tick that reports it


@viper
def accept(st: ptr32, i: int, values: ptr32, t: int) -> int:
    """Bookkeeping of one decoded frame at time t.

    Returns the time since the previous good frame in 100 us units (0 for the
    first frame or after a gap over the timeout) when the message is valid,
    -1 when it is not (yet) valid, -2 for a COUNTER error (counted bad).
    """
    b = i * 13
    cs = st[b + 3]
    if cs >= 0:
        c = values[cs]
        prev = st[b + 2]
        st[b + 2] = c
        resync = st[b + 11]
        st[b + 11] = 0
        if st[b + 6] and not resync and c != ((prev + 1) & st[b + 4]):
            st[b + 10] += 1
            st[b + 9] = 0
            if st[b + 8] < 255:
                st[b + 8] += 1
            if st[b + 8] >= 5:
                if st[b + 7]:
                    st[b + 12] = 1
                st[b + 7] = 0
            return -2
    st[b + 8] = 0
    if not st[b + 7]:
        st[b + 9] += 1
        if st[b + 9] >= 2:
            st[b + 7] = 1
    d = 0
    if st[b + 6]:
        d = ((t - st[b] + 0x20000000) & 0x3FFFFFFF) - 0x20000000
        if d < 0 or d > st[b + 5]:
            d = 0
    else:
        st[b + 6] = 1
    st[b] = t
    if not st[b + 7]:
        return -1
    d += st[b + 1]
    d100 = d // 100
    st[b + 1] = d - d100 * 100
    return d100


@viper
def mark_bad(st: ptr32, i: int):
    """A frame rejected before decoding (CHECKSUM, DLC): counted bad, and the
    next frame's COUNTER is taken as the new reference (the rejected frames'
    counters were never read)."""
    b = i * 13
    st[b + 11] = 1
    st[b + 10] += 1
    st[b + 9] = 0
    if st[b + 8] < 255:
        st[b + 8] += 1
    if st[b + 8] >= 5:
        if st[b + 7]:
            st[b + 12] = 1
        st[b + 7] = 0


class Validity:
    def __init__(self, gen):
        n = gen.N_MESSAGES
        self.n = n
        st = array("i", bytes(4 * STRIDE * n))
        for i in range(n):
            b = i * STRIDE
            st[b + CNT_SLOT] = gen.MSG_COUNTER_SLOT[i]
            bits = gen.MSG_COUNTER_BITS[i]
            st[b + CNT_MASK] = (1 << bits) - 1 if bits else 0
            c = gen.MSG_CYCLE_MS[i]
            st[b + TIMEOUT] = TIMEOUT_CYCLES * (c if c > 0 else 100) * 1000
        self.st = st
        self.has_ck = bytearray([1 if s >= 0 else 0 for s in gen.MSG_CHECKSUM_SLOT])
        self.ever = bytearray(n)
        self.reported = bytearray(n)
        self.watch = bytearray(n)  # messages whose loss is reported
        self.vb = bytearray(n)  # VALID flags, refreshed by check_timeouts()

    def take_lost(self, i):
        b = i * STRIDE + LOST
        x = self.st[b]
        self.st[b] = 0
        return x

    def valid(self, i):
        return self.st[i * STRIDE + VALID]

    def bad(self, i):
        mark_bad(self.st, i)

    def bad_total(self):
        t = 0
        st = self.st
        for i in range(self.n):
            t += st[i * STRIDE + BAD_TOTAL]
        return t

    def check_timeouts(self, t, tdiff):
        st = self.st
        for i in range(self.n):
            b = i * STRIDE
            if st[b + SEEN] and tdiff(t, st[b + LAST_T]) > st[b + TIMEOUT]:
                st[b + SEEN] = 0
                st[b + VALID] = 0
                st[b + GOOD_RUN] = 0
            self.vb[i] = st[b + VALID]


@viper
def rec_time(buf: ptr8, o: int) -> int:
    """Low 30 bits of a stream record's u64 microsecond timestamp."""
    return buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | ((buf[o + 3] & 0x3F) << 24)


@viper
def rec_key(buf: ptr8, o: int) -> int:
    """Decoder key of a stream record: id, | 0x20000000 when extended."""
    k = buf[o + 8] | (buf[o + 9] << 8) | (buf[o + 10] << 16) | ((buf[o + 11] & 0x1F) << 24)
    if buf[o + 12] & 1:
        k |= 0x20000000
    return k
