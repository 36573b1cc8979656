"""Per-message validity, modelled on opendbc's CANParser.

A message is valid after 2 good frames in a row; it turns invalid after
``BAD_LIMIT`` bad frames in a row (CHECKSUM mismatch, COUNTER not advancing
by one, wrong DLC) or when no frame arrived for 10x its DBC cycle time
(1 s for a message without a cycle time). Frames with a bad CHECKSUM are not
decoded at all. Lost/restored events are reported at the next 10 Hz tick by
comparing with ``reported``.

All per-message state lives in one ``array('i')`` (STRIDE words per
message): the per-frame bookkeeping runs in the loop's viper frame scanner
(``loop._scan``), the 10 Hz timeout and lost/restored sweep in ``sweep``.

Viper is spelt ``@micropython.viper``: the compiler recognises the
decorator by name (``from micropython import viper`` does not exist), and
under CPython ``keifw.compat`` makes these plain functions with the same
integer semantics.
"""

from array import array

import micropython
from micropython import const

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


@micropython.viper
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
        self.events = bytearray(n)  # per message: 1 lost, 2 restored (check_timeouts())

    def take_lost(self, i):
        b = i * STRIDE + LOST
        x = self.st[b]
        self.st[b] = 0
        return x

    def valid(self, i):
        return self.st[i * STRIDE + VALID]

    def bad(self, i):
        mark_bad(self.st, i)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)

    def bad_total(self):
        t = 0
        st = self.st
        for i in range(self.n):
            t += st[i * STRIDE + BAD_TOTAL]
        return t

    def check_timeouts(self, t, tdiff=None):
        """Timeouts at time t and the VALID flags in vb (the 10 Hz sweep);
        returns how many watched messages have a lost/restored event in
        ``events`` (bit 0 lost, bit 1 restored)."""
        return sweep(self.st, self.n, t, self.vb, self.watch, self.reported, self.ever, self.events)  # pyright: ignore[reportArgumentType]


@micropython.viper
def sweep(st: ptr32, n: int, t: int, vb: ptr8, watch: ptr8, rep: ptr8, ever: ptr8, ev: ptr8) -> int:
    """The 10 Hz sweep: a message silent for longer than its timeout turns
    invalid; vb[i] = VALID; for the watched messages, ev[i] = 1 (lost: it
    was reported valid and went invalid, or dropped since) | 2 (restored:
    valid again after having been valid before), updating ``rep`` (reported
    valid) and ``ever``, and taking the LOST latch. Returns the number of
    messages with an event."""
    cnt = 0
    i = 0
    while i < n:
        b = i * 13
        if st[b + 6] and (((t - st[b] + 0x20000000) & 0x3FFFFFFF) - 0x20000000) > st[b + 5]:
            st[b + 6] = 0
            st[b + 7] = 0
            st[b + 9] = 0
        valid = st[b + 7]
        vb[i] = valid
        e = 0
        if watch[i]:
            lost = st[b + 12]
            st[b + 12] = 0
            if rep[i] and (lost or not valid):
                rep[i] = 0
                e = 1
            if valid and not rep[i]:
                rep[i] = 1
                if ever[i]:
                    e |= 2
                ever[i] = 1
        ev[i] = e
        if e:
            cnt += 1
        i += 1
    return cnt


@micropython.viper
def rec_time(buf: ptr8, o: int) -> int:
    """Low 30 bits of a stream record's u64 microsecond timestamp."""
    return buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | ((buf[o + 3] & 0x3F) << 24)

