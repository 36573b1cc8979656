"""Fuel, distance and pack energy integrated in exact integer fixed point.

Every accumulator is a pair (whole, remainder) in one ``array('i')`` so it is
persisted in one go and never drifts: a frame adds ``raw * dt`` to the
remainder (dt in 100 us units, the raw value as decoded) and whole units are
carried out with one floor division. Divisors (see Economy.__init__):

* distance: whole metres, remainder in units of ``scale_den * 36000`` per m
  (raw 0.01 km/h x 100 us -> 1 m = 3 600 000 units);
* fuel: whole mL, 1 mL = 36 000 000 units for a 0.001 L/h signal;
* energy: whole Wh, pack power first rounded to a quantum (1 W for a
  traction pack, 0.1 W for a 12 V pack), 1 Wh = 3.6e7 / quantum units.

Rate-like signals are the mean over their cycle ending at the frame, so
value x (time since the previous frame of the message) reproduces the
integral; a frame after a gap longer than the timeout adds nothing.
"""

from array import array

from .compat import native

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# accumulator indices (whole, remainder pairs, then plain counters)
DIST = const(0)
FUEL = const(2)
IDLE_FUEL = const(4)
E_POS = const(6)
E_NEG = const(8)
E_REGEN = const(10)
IDLE_STOP = const(12)
TICKS = const(14)        # trip time, 100 ms ticks
IDLE_TICKS = const(15)   # engine running and stopped
ECO_SUM = const(16)      # sum of 10 Hz eco samples
ECO_N = const(17)
MOVING_TICKS = const(18)
N_ACC = const(20)

# remainder divisor of the idle-stop timer: 100 us units per second
_IDLE_STOP_DIV = const(10000)


@native
def _pair_add(acc, i, x, div):
    r = acc[i + 1] + x
    if r >= div or r < 0:
        q = r // div
        acc[i] += q
        r -= q * div
    acc[i + 1] = r


class Economy:
    def __init__(self, gen, roles):
        self.acc = array("i", bytes(4 * N_ACC))
        s = roles.slot["speed"]
        self.s_speed = s
        # raw * sn * dt100 / (sd * 36000) metres
        self.speed_mul = gen.SCALE_NUM[s] if s >= 0 else 1
        self.dist_div = (gen.SCALE_DEN[s] * 36000) if s >= 0 else 36000
        f = roles.slot["fuel_rate"]
        self.s_fuel = f
        self.fuel_mul = gen.SCALE_NUM[f] if f >= 0 else 1
        # raw L/h * sn/sd * dt100 * 1e-4 / 3600 * 1000 mL
        self.fuel_div = (gen.SCALE_DEN[f] * 36000) if f >= 0 else 36000
        v = roles.slot["pack_v"]
        i = roles.slot["pack_i"]
        self.s_v = v
        self.s_i = i
        self.s_regen = roles.slot["regen"]
        self.s_idle_stop = roles.slot["idle_stop"]
        if v >= 0 and i >= 0:
            quanta = 10 if roles.name["pack_v"].startswith("LIB_") else 1  # per W
            num = gen.SCALE_NUM[v] * gen.SCALE_NUM[i] * quanta
            den = gen.SCALE_DEN[v] * gen.SCALE_DEN[i]
            # power quantum = raw_v * raw_i * num / den, made an integer divisor
            self.p_div = den // num if den % num == 0 else 1
            self.p_mul = 1 if den % num == 0 else num // den
            self.e_div = 36000000 * quanta
            self.quanta = quanta
        else:
            self.p_div = 1
            self.p_mul = 1
            self.e_div = 36000000
            self.quanta = 1
        self.idle_raw = 0  # speed below which the car counts as stopped (raw)
        if s >= 0:
            # 1 km/h in raw units
            self.idle_raw = gen.SCALE_DEN[s] // gen.SCALE_NUM[s] if gen.SCALE_NUM[s] else 1
        self.speed_ok = False  # set by the loop: VEHICLE_SPEED valid and plausible
        self.stopped = True

    # ---- per frame (hot path) -----------------------------------------
    @native
    def on_speed(self, values, dt100):
        raw = values[self.s_speed]
        self.stopped = raw < self.idle_raw
        if dt100 and self.speed_ok:
            _pair_add(self.acc, DIST, raw * self.speed_mul * dt100, self.dist_div)

    @native
    def on_fuel(self, values, dt100):
        if dt100:
            x = values[self.s_fuel] * self.fuel_mul * dt100
            acc = self.acc
            _pair_add(acc, FUEL, x, self.fuel_div)
            if self.stopped and self.speed_ok:
                _pair_add(acc, IDLE_FUEL, x, self.fuel_div)

    @native
    def on_pack(self, values, dt100):
        if not dt100:
            return
        p = values[self.s_v] * values[self.s_i] * self.p_mul
        d = self.p_div
        p = (p + (d >> 1)) // d  # rounded power quantum, unbiased
        x = p * dt100
        acc = self.acc
        ed = self.e_div
        if x >= 0:
            _pair_add(acc, E_POS, x, ed)
        else:
            _pair_add(acc, E_NEG, -x, ed)
            if self.s_regen >= 0 and values[self.s_regen]:
                _pair_add(acc, E_REGEN, -x, ed)

    def on_hybrid_state(self, values, dt100):
        if dt100 and values[self.s_idle_stop]:
            _pair_add(self.acc, IDLE_STOP, dt100, _IDLE_STOP_DIV)

    # ---- fine readings (1 Hz and summaries) ---------------------------
    def dist_m(self):
        return self.acc[DIST]

    def dist_sub_mm(self):
        return self.acc[DIST + 1] // (self.dist_div // 1000)

    def fuel_ml(self, idx=FUEL):
        return self.acc[idx]

    def fuel_sub_ul(self, idx=FUEL):
        return self.acc[idx + 1] // (self.fuel_div // 1000)

    def dist_odo(self):
        """Distance in mm modulo fixed.ODO_PERIOD (window differences)."""
        acc = self.acc
        return (acc[DIST] & 0xFFFFF) * 1000 + acc[DIST + 1] // (self.dist_div // 1000)

    def fuel_odo(self):
        acc = self.acc
        return (acc[FUEL] & 0xFFFFF) * 1000 + acc[FUEL + 1] // (self.fuel_div // 1000)

    def energy_mwh(self, idx):
        acc = self.acc
        return acc[idx] * 1000 + acc[idx + 1] // (self.e_div // 1000)

    def net_wh(self):
        """Net pack energy out, whole Wh (floor; see net_sub_mwh)."""
        acc = self.acc
        div = self.e_div // 1000
        w = acc[E_POS] - acc[E_NEG]
        if acc[E_POS + 1] // div - acc[E_NEG + 1] // div < 0:
            w -= 1
        return w

    def net_sub_mwh(self):
        """mWh 0..999 on top of net_wh()."""
        acc = self.acc
        div = self.e_div // 1000
        m = acc[E_POS + 1] // div - acc[E_NEG + 1] // div
        return m + 1000 if m < 0 else m

    def idle_stop_s10(self):
        acc = self.acc
        return acc[IDLE_STOP] * 10 + acc[IDLE_STOP + 1] // 1000
