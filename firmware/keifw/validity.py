"""Per-message validity, modelled on opendbc's CANParser.

A message is valid after 2 good frames in a row; it turns invalid after
``BAD_LIMIT`` bad frames in a row (CHECKSUM mismatch, COUNTER not advancing
by one, wrong DLC) or when no frame arrived for 10x its DBC cycle time
(1 s for a message without a cycle time). Frames with a bad CHECKSUM are not
decoded at all. Lost/restored events are reported at the next 10 Hz tick by
comparing with the REPORTED row of ``Validity.flags``.

All per-message state lives in one ``array('i')`` (STRIDE words per
message): the per-frame bookkeeping runs in the viper frame scanner
(``scan._scan``), the 10 Hz timeout and lost/restored sweep in ``sweep``.

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


# Validity.flags: five rows of n bytes, one viper argument for the sweep
VB = const(0)        # VALID as of the last sweep (the row lines and inputs read)
WATCH = const(1)     # messages whose loss is reported
REPORTED = const(2)  # reported valid
EVER = const(3)      # ever reported valid
EVENTS = const(4)    # the last sweep's event: 1 lost, 2 restored


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
        self.flags = bytearray(5 * n)
        self.vb = self.flags  # VALID flags: its first row (indices below n)

    def watch(self, i):
        """Report message i's losses and restorations."""
        self.flags[WATCH * self.n + i] = 1

    def event(self, i):
        """Message i's event in the last sweep: 1 lost, 2 restored, 0 none."""
        return self.flags[EVENTS * self.n + i]

    def bad_total(self):
        t = 0
        st = self.st
        for i in range(self.n):
            t += st[i * STRIDE + BAD_TOTAL]
        return t


@micropython.viper
def sweep(st: ptr32, n: int, t: int, flags: ptr8) -> int:
    """The 10 Hz sweep at time t: a message silent for longer than its
    timeout turns invalid; row VB = VALID; for the watched messages, row
    EVENTS = 1 (lost: it was reported valid and went invalid, or dropped
    since) | 2 (restored: valid again after having been valid before),
    updating rows REPORTED and EVER, and taking the LOST latch. Returns the
    number of messages with an event."""
    watch = n
    rep = 2 * n
    ever = 3 * n
    ev = 4 * n
    cnt = 0
    i = 0
    while i < n:
        b = i * 13
        if st[b + 6] and (((t - st[b] + 0x20000000) & 0x3FFFFFFF) - 0x20000000) > st[b + 5]:
            st[b + 6] = 0
            st[b + 7] = 0
            st[b + 9] = 0
        valid = st[b + 7]
        flags[i] = valid
        e = 0
        if flags[watch + i]:
            lost = st[b + 12]
            st[b + 12] = 0
            if flags[rep + i] and (lost or not valid):
                flags[rep + i] = 0
                e = 1
            if valid and not flags[rep + i]:
                flags[rep + i] = 1
                if flags[ever + i]:
                    e |= 2
                flags[ever + i] = 1
        flags[ev + i] = e
        if e:
            cnt += 1
        i += 1
    return cnt


@micropython.viper
def rec_time(buf: ptr8, o: int) -> int:
    """Low 30 bits of a stream record's u64 microsecond timestamp."""
    return buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | ((buf[o + 3] & 0x3F) << 24)

