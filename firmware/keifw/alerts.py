"""Highway-speed warnings with hysteresis and dwell (rules in docs/firmware.md).

Evaluated at 10 Hz. A warning is raised when its "on" condition has held
for ``on`` consecutive ticks and cleared when its "off" condition (a
hysteresis band away from the on condition) has held for ``off`` ticks; the
level may only rise while it is active (after holding for the on dwell),
so nothing flickers. While the inputs of a warning are invalid or stale its
dwell counters are frozen: nothing is raised, nothing cleared.

The whole tick is one viper call (``tick``) over one int array holding the
four warnings' counters, the thresholds, the 5 s speed history and the
open log entries (the _S_* layout), and the trip log array: per tick it
costs what a handful of Python attribute loads would.
"""

from array import array

import micropython
from micropython import const

from .fixed import small

KINDS = (b"overspeed", b"cannot_hold_speed", b"below_minimum", b"engine_stress")
LEVELS = (b"none", b"advisory", b"caution", b"critical")
OVERSPEED = const(0)
CANNOT_HOLD = const(1)
BELOW_MIN = const(2)
ENGINE_STRESS = const(3)
N_KINDS = const(4)

EV_NONE = const(0)
EV_RAISED = const(1)
EV_CLEARED = const(2)
EV_ESCALATED = const(3)

# profile: (code on KD_WARNING, limit 0.01 km/h, minimum 0.01 km/h, highway)
PROFILES = {
    "jp-expressway": (0, 10000, 5000, True),
    "jp-expressway-120": (1, 12000, 5000, True),
    "us-minitruck-55": (2, 8851, 0, False),
    "us-minitruck-35": (3, 5633, 0, False),
    "us-interstate": (4, 11265, 6437, True),
    "custom": (5, 8000, 0, False),
}
KEI_ADVISORY_CKMH = const(12070)  # 75 mph


def mph_to_ckmh(mph):
    return mph * 160934 // 1000


MAX_LOG = const(64)

# The state array (array('i')). Per warning k, at k * _A_STRIDE:
_A_ACTIVE = const(0)
_A_LEVEL = const(1)
_A_ON = const(2)      # ticks the on condition has held (while not active)
_A_OFF = const(3)     # ticks the off condition has held (while active)
_A_UP = const(4)      # ticks a higher level has held (while active)
_A_START = const(5)   # t_ds it was raised
_A_STRIDE = const(6)
# then the thresholds, set once (all >= 0: config.py bounds them) ...
_S_LIMIT = const(24)       # 0.01 km/h
_S_THR = const(25)         # overspeed threshold: the limit, or the kei advisory speed below it
_S_MIN = const(26)         # 0.01 km/h; 0: no below_minimum warning
_S_RPM = const(27)
_S_BOOST = const(28)       # 0.1 kPa
_S_TEMP = const(29)        # 0.1 degC
_S_HAS_BOOST = const(30)
_S_IS_EV = const(31)
# ... the tick's own state ...
_S_HPOS = const(32)        # speed history: next slot
_S_HN = const(33)          # speed history: samples held (up to _H_LEN)
_S_ON_HIGHWAY = const(34)
_S_HW_CNT = const(35)      # ticks at minimum + 20 km/h, up to _HW_TICKS (only ">=" is asked)
_S_LOW_CNT = const(36)     # ticks below 20 km/h, up to _LOW_TICKS
_S_LOG_N = const(37)
_S_LOG_TOTAL = const(38)
_S_HIGHEST = const(39)     # highest level of the active warnings
_S_MASK = const(40)        # bit k: warning k active
_S_N_EVENTS = const(41)    # kinds with an event in the last tick
_S_OPEN = const(42)        # per kind: its open log entry, -1: none
_S_HIST = const(46)        # speed history, 10 Hz, 5 s (for the steadiness and the loss of speed)
_H_LEN = const(50)
_S_LEN = const(96)
_HW_TICKS = const(300)
_LOW_TICKS = const(100)


@micropython.viper
def tick(sto, logo, evo, t_ds: int, ro) -> int:
    """One 10 Hz tick over the state array sto, the log logo and the events
    bytearray evo (EV_* per kind), from the readings ro (an int array in
    keifw.inputs' O_* layout, asserted in Alerts: 0 speed_ok, 1 v 0.01 km/h,
    3 eng_ok, 4 rpm, 5 pedal_ok, 6 pedal 0.1 %, 7 boost 0.1 kPa, 8 temp
    0.1 degC; the *_ok flags 0 / 1). Returns how many kinds have an event.
    Words read back from int arrays are zero-extended on 64-bit ports: the
    readings and the speed history are sign-fixed, open entries range-checked.
    """
    st = ptr32(sto)
    log = ptr32(logo)
    ev = ptr8(evo)
    r = ptr32(ro)
    speed_ok = r[0]
    eng_ok = r[3]
    pedal_ok = r[5]
    v = r[1]
    if (v >> 31) == 1:
        v -= (v >> 31) << 16 << 16
    rpm = r[4]
    if (rpm >> 31) == 1:
        rpm -= (rpm >> 31) << 16 << 16
    pedal = r[6]
    if (pedal >> 31) == 1:
        pedal -= (pedal >> 31) << 16 << 16
    boost = r[7]
    if (boost >> 31) == 1:
        boost -= (boost >> 31) << 16 << 16
    temp = r[8]
    if (temp >> 31) == 1:
        temp -= (temp >> 31) << 16 << 16
    mn = st[_S_MIN]
    old = 0
    full = 0
    if speed_ok:
        hpos = st[_S_HPOS]
        hn = st[_S_HN]
        if hn == _H_LEN:
            old = st[_S_HIST + hpos]
        else:
            old = st[_S_HIST]
        if (old >> 31) == 1:  # zero-extended negative (64-bit port)
            old -= (old >> 31) << 16 << 16
        st[_S_HIST + hpos] = v
        hpos += 1
        if hpos == _H_LEN:
            hpos = 0
        st[_S_HPOS] = hpos
        if hn < _H_LEN:
            hn += 1
            st[_S_HN] = hn
        if hn == _H_LEN:
            full = 1
        if mn > 0:
            if v >= mn + 2000:
                if st[_S_HW_CNT] < _HW_TICKS:
                    st[_S_HW_CNT] += 1
                if st[_S_HW_CNT] >= _HW_TICKS:
                    st[_S_ON_HIGHWAY] = 1
            else:
                st[_S_HW_CNT] = 0
            if v < 2000:
                if st[_S_LOW_CNT] < _LOW_TICKS:
                    st[_S_LOW_CNT] += 1
                if st[_S_LOW_CNT] >= _LOW_TICKS:
                    st[_S_ON_HIGHWAY] = 0
            else:
                st[_S_LOW_CNT] = 0
    on_highway = st[_S_ON_HIGHWAY]
    n = 0
    highest = 0
    mask = 0
    for k in range(N_KINDS):
        # this kind's conditions: valid, on, off, level, dwells
        valid = 0
        on = 0
        off = 0
        level = 2
        on_dwell = 30
        off_dwell = 30
        if k == OVERSPEED:
            if speed_ok:
                valid = 1
                limit = st[_S_LIMIT]
                thr = st[_S_THR]
                if v > thr + 100:
                    on = 1
                if v < thr - 300:
                    off = 1
                if v > limit + 1000:
                    level = 3
                elif v <= limit:
                    level = 1
        elif k == CANNOT_HOLD:
            if speed_ok and pedal_ok and full:
                valid = 1
                on_dwell = 20
                if (v >= 7000 or (mn > 0 and on_highway)) and pedal >= 900 and v <= old - 100:
                    on = 1
                if pedal < 800 or v >= old or v < 3000:
                    off = 1
                if mn > 0 and v < mn:
                    level = 3
        elif k == BELOW_MIN:
            if speed_ok and mn > 0:
                valid = 1
                on_dwell = 150
                # steady: not braking down to an exit or a jam (< 10 km/h change in 5 s)
                if on_highway and full and v - old > -1000 and v - old < 1000 and v >= 2000 and v < mn:
                    on = 1
                if (not on_highway) or v >= mn + 300:
                    off = 1
                if v < mn - 1500:
                    level = 3
        elif eng_ok:  # ENGINE_STRESS: the engine / motor messages only
            valid = 1
            off_dwell = 50
            tl = st[_S_TEMP]
            hot = 0
            if temp > tl:
                hot = 1
                level = 3
            else:
                on_dwell = 50
            if st[_S_IS_EV]:
                level = 3
                on = hot
                if temp < tl - 50:
                    off = 1
            else:
                rl = st[_S_RPM]
                bl = st[_S_BOOST]
                has_boost = st[_S_HAS_BOOST]
                if hot or rpm > rl or (has_boost and boost > bl):
                    on = 1
                if temp < tl - 50 and rpm < rl - 500 and ((not has_boost) or boost < bl - 100):
                    off = 1
        a = k * _A_STRIDE
        e = EV_NONE
        if valid:
            # the dwell rules (one warning, one tick with valid inputs)
            if not st[a + _A_ACTIVE]:
                if on:
                    st[a + _A_ON] += 1
                    if st[a + _A_ON] >= on_dwell:
                        st[a + _A_ACTIVE] = 1
                        st[a + _A_LEVEL] = level
                        st[a + _A_OFF] = 0
                        st[a + _A_UP] = 0
                        e = EV_RAISED
                else:
                    st[a + _A_ON] = 0
            else:
                if off:
                    st[a + _A_OFF] += 1
                    if st[a + _A_OFF] >= off_dwell:
                        st[a + _A_ACTIVE] = 0
                        st[a + _A_ON] = 0
                        e = EV_CLEARED
                else:
                    st[a + _A_OFF] = 0
                if e == EV_NONE:
                    if on and level > st[a + _A_LEVEL]:
                        st[a + _A_UP] += 1
                        if st[a + _A_UP] >= on_dwell:
                            st[a + _A_LEVEL] = level
                            st[a + _A_UP] = 0
                            e = EV_ESCALATED
                    else:
                        st[a + _A_UP] = 0
        ev[k] = e
        if e != EV_NONE:
            # the trip log: kind, level, start_ds, end_ds (-1 while active)
            n += 1
            if e == EV_RAISED:
                st[a + _A_START] = t_ds
                st[_S_LOG_TOTAL] += 1
                j = st[_S_LOG_N]
                if j < MAX_LOG:
                    log[j * 4] = k
                    log[j * 4 + 1] = st[a + _A_LEVEL]
                    log[j * 4 + 2] = t_ds
                    log[j * 4 + 3] = -1
                    st[_S_OPEN + k] = j
                    st[_S_LOG_N] = j + 1
                else:
                    st[_S_OPEN + k] = -1
            else:
                j = st[_S_OPEN + k]
                if j >= 0 and j < MAX_LOG:
                    if e == EV_ESCALATED:
                        log[j * 4 + 1] = st[a + _A_LEVEL]
                    else:
                        log[j * 4 + 3] = t_ds
                        st[_S_OPEN + k] = -1
        if st[a + _A_ACTIVE]:
            mask |= 1 << k
            if st[a + _A_LEVEL] > highest:  # noqa: PLR1730  (max() in viper: a runtime call on objects)
                highest = st[a + _A_LEVEL]
    st[_S_HIGHEST] = highest
    st[_S_MASK] = mask
    st[_S_N_EVENTS] = n
    return n


class AlarmView:
    """One warning's state as lines.py reads it (read-only)."""

    def __init__(self, st, k):
        self.st = st
        self.base = k * _A_STRIDE

    @property
    def active(self):
        return self.st[self.base + _A_ACTIVE] != 0

    @property
    def level(self):
        return self.st[self.base + _A_LEVEL]

    @property
    def start_ds(self):
        return self.st[self.base + _A_START]


class Alerts:
    def __init__(self, cfg, has_boost, is_ev):
        name = cfg["profile"]
        code, limit, minimum, highway = PROFILES[name]
        if name == "us-interstate":
            limit = mph_to_ckmh(cfg["posted_limit_mph"])
            minimum = mph_to_ckmh(cfg["minimum_mph"])
        elif name == "custom":
            limit = cfg["custom_limit_kmh"] * 100
            minimum = cfg["custom_minimum_kmh"] * 100
            highway = minimum > 0
        self.profile = name
        self.code = code
        self.limit = small(limit)  # a small int, not a frozen long (see fixed.small)
        self.minimum = small(minimum) if highway else 0
        self.interstate = name == "us-interstate"
        self.rpm_limit = small(cfg["rpm_limit"])
        self.boost_limit = cfg["boost_limit_kpa"] * 10
        self.temp_limit = (150 if is_ev else cfg["coolant_limit_c"]) * 10
        self.has_boost = has_boost
        self.is_ev = is_ev
        self.st = st = array("i", bytes(4 * _S_LEN))
        self.set_limits(self.limit, self.minimum, self.interstate)
        st[_S_RPM] = self.rpm_limit
        st[_S_BOOST] = self.boost_limit
        st[_S_TEMP] = self.temp_limit
        st[_S_HAS_BOOST] = 1 if has_boost else 0
        st[_S_IS_EV] = 1 if is_ev else 0
        for k in range(N_KINDS):
            st[_S_OPEN + k] = -1
        self.log_open = memoryview(st)[_S_OPEN:_S_OPEN + N_KINDS]
        self.alarms = [AlarmView(st, k) for k in range(N_KINDS)]
        self.events = bytearray(N_KINDS)  # EV_* of the last tick per kind
        self.readings = array("i", bytes(4 * 9))  # update's arguments, in tick's layout
        self.n_events = 0  # how many of them are not EV_NONE
        # trip log: kind, level, start_ds, end_ds (-1 while active)
        self.log = array("i", bytes(4 * 4 * MAX_LOG))

    @property
    def log_n(self):
        return self.st[_S_LOG_N]

    @log_n.setter
    def log_n(self, n):
        self.st[_S_LOG_N] = n

    @property
    def log_total(self):
        return self.st[_S_LOG_TOTAL]

    @log_total.setter
    def log_total(self, n):
        self.st[_S_LOG_TOTAL] = n

    def set_limits(self, limit, minimum, interstate):
        """The speed rule in force (0.01 km/h; minimum 0: none): the
        profile's, or a jurisdiction's (keifw/gps.py). ``interstate``: the
        kei advisory speed warns below a higher limit."""
        st = self.st
        st[_S_LIMIT] = limit
        st[_S_THR] = KEI_ADVISORY_CKMH if interstate and KEI_ADVISORY_CKMH < limit else limit
        st[_S_MIN] = minimum

    def limit_now(self):
        return self.st[_S_LIMIT]

    def minimum_now(self):
        return self.st[_S_MIN]

    def highest_level(self):
        return self.st[_S_HIGHEST]

    def active_mask(self):
        return self.st[_S_MASK]

    @micropython.viper
    def update(self, t_ds, speed_ok, v, pedal_ok, pedal, eng_ok, rpm, boost, temp):
        """One 10 Hz tick (see ``tick``): self.events[k] the EV_* code of each kind this tick.

        Viper, not Python: a Python method this size gets its frame from the
        heap on every call (more than 11 words of state; MicroPython's
        objfun.c) and frees it again. The arguments stay objects, handed on
        to tick as they came (typed, each would be unboxed here and boxed
        again for the call). self.n_events is stored only when it changes:
        a store on a class with properties looks the name up in the class
        first (about 1,800 instructions on a Cortex-M3).
        """
        sto = self.st
        r = ptr32(self.readings)
        r[0] = int(speed_ok)
        r[1] = int(v)
        r[3] = int(eng_ok)
        r[4] = int(rpm)
        r[5] = int(pedal_ok)
        r[6] = int(pedal)
        r[7] = int(boost)
        r[8] = int(temp)
        before = ptr32(sto)[_S_N_EVENTS]
        n = tick(sto, self.log, self.events, t_ds, self.readings)
        if int(n) != before:
            self.n_events = n

    def close_all(self, t_ds):
        for k in range(N_KINDS):
            j = self.log_open[k]
            if j >= 0:
                self.log[j * 4 + 3] = t_ds
