"""Highway-speed warnings with hysteresis and dwell (rules in docs/firmware.md).

Evaluated at 10 Hz. A warning is raised when its "on" condition has held
for ``on`` consecutive ticks and cleared when its "off" condition (a
hysteresis band away from the on condition) has held for ``off`` ticks; the
level may only rise while it is active (after holding for the on dwell),
so nothing flickers. While the inputs of a warning are invalid or stale its
dwell counters are frozen: nothing is raised, nothing cleared.
"""

from array import array

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


class Alarm:
    def __init__(self):
        self.active = False
        self.level = 0
        self.on_cnt = 0
        self.off_cnt = 0
        self.up_cnt = 0
        self.start_ds = 0

    def step(self, on, off, level, on_dwell, off_dwell):
        """One tick with valid inputs. Returns an EV_* code."""
        if not self.active:
            if on:
                self.on_cnt += 1
                if self.on_cnt >= on_dwell:
                    self.active = True
                    self.level = level
                    self.off_cnt = 0
                    self.up_cnt = 0
                    return EV_RAISED
            else:
                self.on_cnt = 0
            return EV_NONE
        if off:
            self.off_cnt += 1
            if self.off_cnt >= off_dwell:
                self.active = False
                self.on_cnt = 0
                return EV_CLEARED
        else:
            self.off_cnt = 0
        if on and level > self.level:
            self.up_cnt += 1
            if self.up_cnt >= on_dwell:
                self.level = level
                self.up_cnt = 0
                return EV_ESCALATED
        else:
            self.up_cnt = 0
        return EV_NONE


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
        self.limit = small(limit)  # used in arithmetic every tick (see fixed.small)
        self.minimum = small(minimum) if highway else 0
        self.interstate = name == "us-interstate"
        self.rpm_limit = small(cfg["rpm_limit"])
        self.boost_limit = cfg["boost_limit_kpa"] * 10
        self.temp_limit = (150 if is_ev else cfg["coolant_limit_c"]) * 10
        self.has_boost = has_boost
        self.is_ev = is_ev
        self.alarms = [Alarm() for _ in range(N_KINDS)]
        self.events = bytearray(N_KINDS)  # EV_* of the last tick per kind
        self.n_events = 0  # how many of them are not EV_NONE
        # speed history, 10 Hz, 5 s, for cannot_hold_speed
        self.hist = array("i", bytes(4 * 50))
        self.hpos = 0
        self.hn = 0
        self.on_highway = False
        self.hw_cnt = 0
        self.low_cnt = 0
        # trip log: kind, level, start_ds, end_ds (-1 while active)
        self.log = array("i", bytes(4 * 4 * MAX_LOG))
        self.log_n = 0
        self.log_total = 0
        self.log_open = array("i", [-1] * N_KINDS)

    def highest_level(self):
        lv = 0
        for a in self.alarms:
            if a.active and a.level > lv:
                lv = a.level
        return lv

    def active_mask(self):
        m = 0
        for k in range(N_KINDS):
            if self.alarms[k].active:
                m |= 1 << k
        return m

    def _record(self, k, ev, t_ds):
        a = self.alarms[k]
        if ev == EV_RAISED:
            a.start_ds = t_ds
            self.log_total += 1
            if self.log_n < MAX_LOG:
                i = self.log_n * 4
                log = self.log
                log[i] = k
                log[i + 1] = a.level
                log[i + 2] = t_ds
                log[i + 3] = -1
                self.log_open[k] = self.log_n
                self.log_n += 1
            else:
                self.log_open[k] = -1
        elif ev == EV_ESCALATED:
            j = self.log_open[k]
            if j >= 0:
                self.log[j * 4 + 1] = a.level
        elif ev == EV_CLEARED:
            j = self.log_open[k]
            if j >= 0:
                self.log[j * 4 + 3] = t_ds
                self.log_open[k] = -1

    def update(self, t_ds, speed_ok, v, pedal_ok, pedal, eng_ok, rpm, boost, temp):
        """One 10 Hz tick. v 0.01 km/h, pedal 0.1 %, rpm, boost 0.1 kPa, temp 0.1 degC.

        Sets self.events[k] to the EV_* code of each kind this tick.
        """
        ev = self.events
        alarms = self.alarms
        for k in range(N_KINDS):
            ev[k] = EV_NONE
        if speed_ok:
            # speed history (5 s)
            h = self.hist
            old = h[self.hpos] if self.hn == 50 else h[0]
            h[self.hpos] = v
            self.hpos = (self.hpos + 1) % 50
            if self.hn < 50:
                self.hn += 1
            limit = self.limit
            # ---- overspeed
            thr = limit
            if self.interstate and KEI_ADVISORY_CKMH < thr:
                thr = KEI_ADVISORY_CKMH
            level = 3 if v > limit + 1000 else (2 if v > limit else 1)
            ev[OVERSPEED] = alarms[OVERSPEED].step(v > thr + 100, v < thr - 300, level, 30, 30)
            # ---- below_minimum (only once "on the highway")
            mn = self.minimum
            if mn > 0:
                if v >= mn + 2000:
                    self.hw_cnt += 1
                    if self.hw_cnt >= 300:
                        self.on_highway = True
                else:
                    self.hw_cnt = 0
                if v < 2000:
                    self.low_cnt += 1
                    if self.low_cnt >= 100:
                        self.on_highway = False
                else:
                    self.low_cnt = 0
                # steady: not braking down to an exit or a jam (< 10 km/h change in 5 s)
                steady = self.hn == 50 and -1000 < v - old < 1000
                on = self.on_highway and steady and 2000 <= v < mn
                off = (not self.on_highway) or v >= mn + 300
                level = 3 if v < mn - 1500 else 2
                ev[BELOW_MIN] = alarms[BELOW_MIN].step(on, off, level, 150, 30)
            # ---- cannot_hold_speed: highway speed, pedal near full, losing speed over 5 s
            if pedal_ok and self.hn == 50:
                losing = v <= old - 100
                hwspeed = v >= 7000 or (mn > 0 and self.on_highway)
                on = hwspeed and pedal >= 900 and losing
                off = pedal < 800 or v >= old or v < 3000
                level = 3 if (mn > 0 and v < mn) else 2
                ev[CANNOT_HOLD] = alarms[CANNOT_HOLD].step(on, off, level, 20, 30)
        # ---- engine_stress (needs the engine / motor messages only)
        if eng_ok:
            if self.is_ev:
                hot = temp > self.temp_limit
                on = hot
                off = temp < self.temp_limit - 50
                level = 3
            else:
                hot = temp > self.temp_limit
                revs = rpm > self.rpm_limit
                boosted = self.has_boost and boost > self.boost_limit
                on = hot or revs or boosted
                off = temp < self.temp_limit - 50 and rpm < self.rpm_limit - 500 and (
                    not self.has_boost or boost < self.boost_limit - 100)
                level = 3 if hot else 2
            ev[ENGINE_STRESS] = alarms[ENGINE_STRESS].step(on, off, level, 50 if not hot else 30, 50)
        n = 0
        for k in range(N_KINDS):
            if ev[k]:
                n += 1
                self._record(k, ev[k], t_ds)
        self.n_events = n

    def close_all(self, t_ds):
        for k in range(N_KINDS):
            j = self.log_open[k]
            if j >= 0:
                self.log[j * 4 + 3] = t_ds
