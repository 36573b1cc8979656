"""Speed-source fusion: the speed the trip trusts, and the sources it does not.

A car offers several speeds: the vehicle speed (the ``speed`` role), each
wheel (``wheel_fl`` .. ``wheel_rr``), OBD-II PID 0x0D, a GPS. Each is a row
of one small table (``Fusion.src``, F_STRIDE words a row, the F_* offsets);
a source group is the rows that make one speed (the four wheels: their
mean). Groups are in priority order: the vehicle speed, the wheels, then
the sources other modules add (``Fusion.add``: OBD-II, GPS). A row reads
its value from a decoded slot (its message valid) or has it pushed by its
owner (``Fusion.push``: fresh for ``max_age`` ticks); a pushed source's own
plausibility (a GPS fix's quality, an OBD-II reply's sender) is its owner's
to apply before it pushes.

Every 10 Hz tick ``judge`` (one viper call) reads the rows and picks the
trusted speed by the last judgement's verdicts; twice a second it judges
(JUDGE_TICKS), by this rule, in 0.01 km/h:

* **zero**: a row below 1 km/h while the witness reads above 10 km/h and
  the engine runs (on an engine car) — a dead or missing sensor;
* **frozen**: a row whose value (above 1 km/h) has not changed for 3 s
  while the witness moved by more than 5 km/h since it last changed;
* **disagree**: a row more than 7.2 km/h from the other groups, both above
  1 km/h: it loses when more groups disagree with it than agree (itself
  counted on its side), and in a tie when a disagreeing group has the higher
  priority (with two sources a disagreement cannot say which is wrong: the
  car's own vehicle speed, its odometer's source, is kept); **scale** when
  the ratio of the two held within 10 % while it built up (a unit mismatch);
* a row that **jumped** (changed faster than 1.2 g plus 5 km/h between two
  ticks: a step the frame checks took after 25 agreeing frames) loses a tie
  too, and neither leads nor votes until it agrees with its witness (or has
  none).

The witness of a row is the first other group with a row not found zero or
frozen. Zero and disagree latch after 3 s of evidence in a row (frozen's
evidence already spans 3 s); a faulty row is trusted again after 5 s
agreeing within 7.2 km/h with its witness while moving (above 10 km/h).
The trusted speed is the first group with a fresh row that is neither
faulty nor under evidence this tick (a row under evidence leads no more:
the trip goes on from the next source at once); its integration kind says
who adds its distance: the frame scanner (the speed role, per frame), the
tick (``loop._count``, a trapezoid per tick) or the source's owner (OBD-II,
between its replies). No trusted source: nothing is integrated, and the
tick counts the time (economy.UNTRUSTED_TICKS).
"""

from array import array

import micropython
from micropython import const

from .fixed import scale_of

# F_* row words: what the row is (set up once)
F_GROUP = const(0)
F_MSG = const(1)       # its message's VALID flag (-1: pushed)
F_SLOT = const(2)
F_A = const(3)         # (raw * A + B) // C is the speed in 0.01 km/h
F_B = const(4)
F_C = const(5)
F_INTEG = const(6)     # INTEG_*
F_MAX_AGE = const(7)   # pushed: fresh for so many ticks
# ... this tick
F_V = const(8)         # 0.01 km/h (pushed: set by the owner)
F_FRESH = const(9)
F_AGE = const(10)      # pushed: ticks since the owner's push
# ... the judgement
F_FAULT = const(11)    # FAULT_* latched, 0 trusted
F_PENDING = const(12)  # the reason under evidence
F_EVIDENCE = const(13)  # judgements of it in a row
F_CLEAR = const(14)    # judgements agreeing while faulty
F_PHYS = const(15)     # the last judgement's zero / frozen evidence
F_LAST = const(16)     # the value at its last change
F_SAME = const(17)     # judgements since
F_WRANGE = const(18)   # the witness's range since: its lowest << 15 | its highest (0.01 km/h, at most 327 km/h)
F_RMIN = const(19)     # the ratio to the disagreeing group (x 1000) while the evidence built up
F_RMAX = const(20)
# ... the trip
F_FAULT_TICKS = const(21)
F_EVER = const(22)     # the last fault the row had (0: never)
F_LEAD_TICKS = const(23)  # a group's first row: ticks it was the trusted speed
F_JUMPED = const(24)   # it changed faster than 1.2 g between two ticks (till it agrees again)
F_STRIDE = const(25)

FAULT_ZERO = const(1)
FAULT_FROZEN = const(2)
FAULT_DISAGREE = const(3)
FAULT_SCALE = const(4)
FAULTS = (b"", b"zero", b"frozen", b"disagree", b"scale")

INTEG_FRAME = const(0)  # the frame scanner integrates its frames (the speed role)
INTEG_TICK = const(1)   # the tick integrates it (loop._count)
INTEG_OWNER = const(2)  # its owner integrates it (OBD-II)

_UNSET = const(0x3FFFFFFF)  # F_LAST before any value
MAX_ROWS = const(8)
MAX_GROUPS = const(4)
# src after the rows (judge's literals: 200 = MAX_ROWS * F_STRIDE ...)
S_N = const(200)        # rows in use
S_ENGINE = const(201)   # 1: an engine car (the zero rule asks the engine)
S_GS = const(202)       # per group: the sum and count of its rows not zero or frozen, the mean and count of its voters
_G_STRIDE = const(4)
S_VH = const(218)       # the trusted speed of the last 10 ticks (the acceleration)
S_PHASE = const(228)    # ticks since the last judgement
S_PRIMARY = const(229)  # the first group that had a value: a trusted speed from a later one is a fallback
S_WITNESS = const(230)  # per group, its witness's speed + 1 (0: none)
S_CHANGES = const(234)  # faults latched or cleared so far (a source line each: loop, lines.sources)
S_LEN = const(235)
JUDGE_TICKS = const(5)  # the rule runs twice a second: its counts below are in judgements


@micropython.viper
def judge(src: ptr32, values: ptr32, vb: ptr8, o: ptr32):
    """The tick's speed: the rows' values and the trusted group every tick
    (by the verdicts of the last judgement), the rule (module docstring)
    every JUDGE_TICKS ticks; into o (inputs.O_SPEED_OK, O_V, O_LEADER,
    O_LEAD_INTEG, O_FALLBACK, O_FAULTY: faulty rows; the rule reads
    O_RUNNING) and the acceleration over the last second (O_A; 13: its
    history's position). After the rows, src holds the rows in use, the
    engine flag, the groups' sums, the speed history, the ticks since the
    last judgement, the first group seen and the witnesses (S_*): one
    argument, so the tick's call of it stays small. Speeds are kept >= 0 (a
    reading below 0, an offset's noise, is 0) and "unset" is _UNSET, so no
    word read back needs a 64-bit port's sign fix but the decoded raw value
    and the offset."""
    n = src[200]
    # the rows' values, and the trusted speed: the first group with a fresh
    # row neither faulty nor under evidence (as of the last judgement), its mean
    nf = 0
    lead = -1
    lsum = 0
    lcnt = 0
    r = 0
    while r < n:
        b = r * 25
        m = src[b + 1]
        fresh = 0
        if m >= 0 and m < 0x10000:  # a slot row (a pushed row's -1 loads as a large word on a 64-bit port)
            if vb[m]:
                fresh = 1
                x = values[src[b + 2]]
                if (x >> 31) == 1:
                    x -= (x >> 31) << 16 << 16
                c = src[b + 4]
                if (c >> 31) == 1:
                    c -= (c >> 31) << 16 << 16
                v = x * src[b + 3] + c
                if src[b + 5] != 1:  # (a division costs a runtime call)
                    v = v // src[b + 5]
                if v < 0:  # noqa: PLR1730  (max() in viper: a runtime call on objects)
                    v = 0
                # a jump: more than 1.2 g (4.24 km/h a tick) plus 5 km/h since
                # the last tick; it leads and votes no more until it agrees
                dv = v - src[b + 8]
                if src[b + 9] and (dv > 924 or dv < -924):
                    src[b + 24] = 1
                src[b + 8] = v
        elif src[b + 10] < src[b + 7]:
            fresh = 1
            src[b + 10] += 1
        src[b + 9] = fresh
        if src[b + 11]:
            nf += 1
            src[b + 21] += 1
        elif fresh and not src[b + 12] and not src[b + 24]:
            g = src[b]
            if lead < 0 or lead == g:
                lead = g
                lsum += src[b + 8]
                lcnt += 1
        if fresh and src[b] < src[229]:
            src[229] = src[b]  # the first source the car has shown: the others are fallbacks
        r += 1
    ph = src[228] + 1
    if ph >= 5:  # JUDGE_TICKS: the rule
        ph = 0
        engine = src[201]
        k = 202
        while k < 218:
            src[k] = 0
            k += 1
        # the groups' means over rows not found zero or frozen: the witnesses
        r = 0
        while r < n:
            b = r * 25
            if src[b + 9] and src[b + 11] != 1 and src[b + 11] != 2:
                g = 202 + src[b] * 4
                src[g] += src[b + 8]
                src[g + 1] += 1
            r += 1
        # each group's witness: the first other group's mean (+ 1: 0 is none,
        # no word read back negative)
        g = 0
        while g < 4:
            w = 0
            h = 0
            while h < 4:
                c = src[203 + h * 4]
                if h != g and c:
                    w = src[202 + h * 4] // c + 1
                    break
                h += 1
            src[230 + g] = w
            g += 1
        # zero and frozen evidence against the witness; the voting means
        r = 0
        while r < n:
            b = r * 25
            g = src[b]
            v = src[b + 8]
            fresh = src[b + 9]
            w = src[230 + g] - 1
            if fresh and v != src[b + 16]:
                src[b + 16] = v
                src[b + 17] = 0
                src[b + 18] = 0x3FFF8000  # the witness's range since: none yet (min 32767, max 0)
            elif src[b + 17] < 10000:
                src[b + 17] += 1
            phys = 0
            if w >= 0:
                if w > 0x7FFF:  # noqa: PLR1730  (min() in viper: a runtime call on objects)
                    w = 0x7FFF
                lo = src[b + 18] >> 15
                hi = src[b + 18] & 0x7FFF
                if w < lo:  # noqa: PLR1730  (min() in viper: a runtime call on objects)
                    lo = w
                if w > hi:  # noqa: PLR1730
                    hi = w
                src[b + 18] = (lo << 15) | hi
                if fresh:
                    if v < 100 and w > 1000 and (not engine or o[9]):
                        phys = 1
                    elif v >= 100 and src[b + 17] >= 6 and hi - lo > 500:
                        phys = 2  # (stuck at 0: the zero rule's)
            src[b + 15] = phys
            if fresh and not phys and not src[b + 11] and not src[b + 24]:
                g = 204 + g * 4
                src[g] += v
                src[g + 1] += 1
            r += 1
        k = 204
        while k < 218:
            if src[k + 1] > 1:
                src[k] = src[k] // src[k + 1]
            k += 4
        # disagreement; the latches
        r = 0
        while r < n:
            b = r * 25
            g = src[b]
            v = src[b + 8]
            fresh = src[b + 9]
            why = src[b + 15]
            if fresh and not why and v >= 100:
                dis = 0
                agree = 0
                higher = 0
                gv0 = 0
                h = 0
                while h < 4:
                    if h != g and src[205 + h * 4]:
                        gv = src[204 + h * 4]
                        if gv >= 100:
                            dv = v - gv
                            if dv > 720 or dv < -720:
                                if not dis:
                                    gv0 = gv
                                dis += 1
                                if h < g:
                                    higher = 1
                            else:
                                agree += 1
                    h += 1
                if dis > agree + 1 or (dis == agree + 1 and (higher or src[b + 24])):
                    why = 3
                    ratio = v * 1000 // gv0
                    if src[b + 12] != 3:
                        src[b + 19] = ratio
                        src[b + 20] = ratio
                    elif ratio < src[b + 19]:
                        src[b + 19] = ratio
                    elif ratio > src[b + 20]:
                        src[b + 20] = ratio
            if src[b + 24] and why != 3:
                # a jump ends when the row agrees with its witness, or has none
                w = src[230 + g] - 1
                dv = v - w
                if w < 0 or (dv <= 720 and dv >= -720):
                    src[b + 24] = 0
            if why:
                if src[b + 12] == why:
                    if src[b + 13] < 10000:
                        src[b + 13] += 1
                else:
                    src[b + 12] = why
                    src[b + 13] = 1
                if not src[b + 11] and (src[b + 13] >= 6 or why == 2):
                    if why == 3 and src[b + 20] - src[b + 19] <= src[b + 19] // 10 and (
                            src[b + 19] < 900 or src[b + 20] > 1100):
                        why = 4  # a steady ratio: a unit mismatch
                    src[b + 11] = why
                    src[234] += 1
                    src[b + 22] = why
                src[b + 14] = 0
            else:
                src[b + 12] = 0
                src[b + 13] = 0
                if src[b + 11]:
                    # trusted again after agreeing with its witness while moving
                    w = src[230 + g] - 1
                    dv = v - w
                    if fresh and w > 1000 and dv <= 720 and dv >= -720:
                        src[b + 14] += 1
                        if src[b + 14] >= 10:
                            src[b + 11] = 0
                            src[234] += 1
                    else:
                        src[b + 14] = 0
            r += 1
    src[228] = ph
    v = 0
    integ = 0
    if lead >= 0:
        v = lsum // lcnt if lcnt > 1 else lsum
        r = 0
        while src[r * 25] != lead:
            r += 1
        src[r * 25 + 23] += 1
        integ = src[r * 25 + 6]
    o[0] = 1 if lead >= 0 else 0
    o[1] = v
    o[10] = nf
    o[11] = lead
    o[12] = integ
    o[21] = 1 if lead > src[229] else 0
    # acceleration over the last second, cm/s2
    vpos = o[13]
    a = 0
    if lead >= 0:
        a = (v - src[218 + vpos]) * 5 // 18
        src[218 + vpos] = v
    else:
        k = 218
        while k < 228:
            src[k] = v
            k += 1
    o[2] = a
    o[13] = vpos + 1 if vpos < 9 else 0


class Fusion:
    """The speed sources of one car: the table ``src`` and its names."""

    def __init__(self, gen, roles, engine):
        assert S_N == F_STRIDE * MAX_ROWS and S_VH == S_GS + _G_STRIDE * MAX_GROUPS and S_PHASE == S_VH + 10 \
            and S_WITNESS == S_PRIMARY + 1 and S_CHANGES == S_WITNESS + MAX_GROUPS  # judge's literals
        self.src = array("i", bytes(4 * S_LEN))
        self.src[S_ENGINE] = 1 if engine else 0
        self.src[S_PRIMARY] = MAX_GROUPS
        self.n = 0
        self.groups = 0
        self.names = []        # per row, b"MESSAGE.Signal" or the owner's name
        self.group_names = []  # per group
        self.group_json = []   # ... quoted, as status lines give the trusted one
        self.latched = bytearray(MAX_ROWS)  # per row, its fault as the last source lines said
        self.changes = 0       # src[S_CHANGES] as of those lines
        if roles.has("speed"):
            self._slot_row(gen, roles, "speed", self._group(roles.name["speed"].encode()), INTEG_FRAME)
        wheels = [role for role in ("wheel_fl", "wheel_fr", "wheel_rl", "wheel_rr") if roles.has(role)]
        if wheels:
            g = self._group(b"wheels")
            for role in wheels:
                self._slot_row(gen, roles, role, g, INTEG_TICK)

    def _group(self, name):
        self.group_names.append(name)
        self.group_json.append(b'"' + name + b'"')
        self.groups += 1
        return self.groups - 1

    def _row(self, name, group, integ):
        if self.n >= MAX_ROWS:
            raise ValueError("more speed sources than fusion.MAX_ROWS")
        b = F_STRIDE * self.n
        src = self.src
        src[b + F_GROUP] = group
        src[b + F_MSG] = -1
        src[b + F_SLOT] = -1
        src[b + F_C] = 1
        src[b + F_INTEG] = integ
        src[b + F_LAST] = _UNSET
        self.names.append(name)
        self.n += 1
        src[S_N] = self.n
        return self.n - 1

    def _slot_row(self, gen, roles, role, group, integ):
        r = self._row(roles.name[role].encode(), group, integ)
        b = F_STRIDE * r
        self.src[b + F_MSG] = roles.msg[role]
        self.src[b + F_SLOT] = roles.slot[role]
        self.src[b + F_A], self.src[b + F_B], self.src[b + F_C] = scale_of(gen, roles.slot[role], 100)

    def add(self, name, max_age_ticks, integ):
        """A pushed source of its own group, after the car's (OBD-II, GPS):
        its row, for ``push``. ``integ``: INTEG_TICK or INTEG_OWNER."""
        if self.groups >= MAX_GROUPS:
            raise ValueError("more speed source groups than fusion.MAX_GROUPS")
        r = self._row(name, self._group(name), integ)
        self.src[F_STRIDE * r + F_MAX_AGE] = max_age_ticks
        self.src[F_STRIDE * r + F_AGE] = max_age_ticks  # nothing pushed yet
        return r

    def push(self, row, v):
        """Row ``row``'s speed now, 0.01 km/h: fresh for its max_age ticks."""
        b = F_STRIDE * row
        self.src[b + F_V] = v
        self.src[b + F_AGE] = 0

    def group_of(self, row):
        return self.src[F_STRIDE * row + F_GROUP]
