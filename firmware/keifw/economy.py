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

The per-frame integration itself runs in the loop's viper frame scanner
(``scan._scan``), which reads its parameters and state from ``Economy.p``
(the P_* offsets) and adds into ``acc``; this module sets them up and
reads the figures back.
"""

from array import array

from micropython import const

from .fixed import gcd
from .validity import STRIDE, VALID
from .vehicle import scaled

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
FALLBACK_DIST = const(20)  # (whole m, remainder) of DIST integrated from a fallback speed source
FALLBACK_TICKS = const(22)  # ticks whose distance came from a fallback source
UNTRUSTED_TICKS = const(23)  # ticks with no trusted speed: no distance integrated
N_ACC = const(24)

# remainder divisor of the idle-stop timer: 100 us units per second (the
# scanner's literal 10000)
IDLE_STOP_DIV = const(10000)

# Economy.p: the integration parameters and state the loop's viper frame
# scanner (scan._scan) and the tick's counters (loop._count) read by these
# fixed offsets; slots are -1 when absent.
P_S_SPEED = const(0)
P_SPEED_MUL = const(1)
P_DIST_DIV = const(2)
P_IDLE_RAW = const(3)
P_S_FUEL = const(4)
P_FUEL_MUL = const(5)
P_FUEL_DIV = const(6)
P_S_V = const(7)
P_S_I = const(8)
P_P_MUL = const(9)
P_P_DIV = const(10)
P_E_DIV = const(11)
P_S_REGEN = const(12)
P_S_IDLE_STOP = const(13)
P_STOPPED = const(14)   # state: stopped (below 1 km/h) by the trusted speed
P_SPEED_OK = const(15)  # state, set by the tick: the speed role's frames are the trusted speed (integrated per frame)
P_TRUSTED = const(16)   # state, set by the tick: some speed source is trusted (idle fuel while stopped)
P_FALLBACK_MUL = const(17)  # DIST remainder units per (0.01 km/h x 200 ms): a tick's trapezoid (dist_div // 7200)
P_SPEED_JUMPS = const(18)  # count: frames rejected as implausible (speed, fuel) or arriving too fast
# fuel plausibility per frame: a rate above what the engine can burn, or any
# fuel while the engine stands (a valid rpm of 0), is not integrated and
# counts in P_SPEED_JUMPS (implausible_frames)
P_FUEL_MAX = const(19)    # raw fuel rate ceiling (FUEL_CEILING_MLPH)
P_S_RPM = const(20)       # the rpm's value slot (-1: none)
P_FUEL_RUN = const(21)    # state: consecutive implausible fuel frames
P_RPM_VALID = const(22)   # the rpm message's VALID word in validity.st (-1: none)
# frames rejected, by reason (the trip's and status lines' quality.rejected)
P_REJ_DLC = const(23)
P_REJ_CHECKSUM = const(24)
P_REJ_COUNTER = const(25)
P_REJ_RATE = const(26)          # its message arrives faster than its cycle time allows
P_REJ_PLAUSIBILITY = const(27)  # a speed no car reaches that fast, fuel no engine burns
P_REJ_STALE = const(28)         # after a gap, before consistent frames agree on a new reference
N_P = const(29)
REJECT_REASONS = (b"dlc", b"checksum", b"counter", b"rate", b"plausibility", b"stale")  # from P_REJ_DLC on
# so many consecutive implausible fuel frames mark the fuel rate implausible
# in status lines (until a plausible one)
FUEL_IMPLAUSIBLE_FRAMES = const(3)
# The most fuel a kei engine can burn: kei rules cap engine power at 47 kW;
# at full load a petrol engine runs rich, its efficiency no lower than 18 %
# (a brake-specific consumption near 450 g/kWh), and petrol holds 8.9 kWh/L:
# 47 / (0.18 * 8.9) = 29.3 L/h. The simulated turbo car peaks at 22 L/h.
FUEL_CEILING_MLPH = const(29338)  # 47 kW / (0.18 * 8.9 kWh/L), mL/h

# handler kinds per message (which integration a frame of it runs)
H_NONE = const(0)
H_SPEED = const(1)
H_FUEL = const(2)
H_PACK = const(3)
H_IDLE_STOP = const(4)


class Economy:
    def __init__(self, gen, roles):
        self.acc = array("i", bytes(4 * N_ACC))
        s = roles.slot["speed"]
        self.s_speed = s
        sn, sd = scaled(gen, s)[:2] if s >= 0 else (1, 1)  # km/h per raw
        # raw * sn * dt100 / (sd * 36000) metres
        self.speed_mul = sn
        self.dist_div = sd * 36000
        f = roles.slot["fuel_rate"]
        self.s_fuel = f
        # L/h per raw; with no fuel signal on the bus in mL/h, the unit an OBD-II fuel rate comes in
        fn, fd = scaled(gen, f)[:2] if f >= 0 else (1, 1000)
        self.fuel_mul = fn
        # raw L/h * fn/fd * dt100 * 1e-4 / 3600 * 1000 mL
        self.fuel_div = fd * 36000
        v = roles.slot["pack_v"]
        i = roles.slot["pack_i"]
        self.s_v = v
        self.s_i = i
        self.s_regen = roles.slot["regen"]
        self.s_idle_stop = roles.slot["idle_stop"]
        if v >= 0 and i >= 0:
            vn, vd = scaled(gen, v)[:2]
            cn, cd = scaled(gen, i)[:2]
            # Power in 0.1 W for a pack whose largest power (the DBC's maxima) stays
            # under 20 kW, a mild hybrid's, else in W: a power quantum times a
            # tick's 100 us units (at most 10000) stays below 2**31.
            top = max(abs(gen.MAX[v]), abs(gen.MIN[v])) * max(abs(gen.MAX[i]), abs(gen.MIN[i]))
            quanta = 10 if top < 20000 else 1  # per W
            num = vn * cn * quanta
            den = vd * cd
            g = gcd(num, den)
            # power quantum = round(raw_v * raw_i * p_mul / p_div), an exact fraction
            self.p_mul = num // g
            self.p_div = den // g
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
            self.idle_raw = sd // sn if sn else 1
        p = array("i", bytes(4 * N_P))
        p[P_S_SPEED] = s
        p[P_SPEED_MUL] = self.speed_mul
        p[P_DIST_DIV] = self.dist_div
        p[P_IDLE_RAW] = self.idle_raw
        p[P_S_FUEL] = f
        p[P_FUEL_MUL] = self.fuel_mul
        p[P_FUEL_DIV] = self.fuel_div
        p[P_S_V] = v
        p[P_S_I] = i
        p[P_P_MUL] = self.p_mul
        p[P_P_DIV] = self.p_div
        p[P_E_DIV] = self.e_div
        p[P_S_REGEN] = self.s_regen
        p[P_S_IDLE_STOP] = self.s_idle_stop
        p[P_STOPPED] = 1
        p[P_FALLBACK_MUL] = self.dist_div // 7200  # dist_div = sd * 36000: exact
        # raw per L/h: fd / fn; the ceiling below 2**31 for any fraction a DBC gives
        p[P_FUEL_MAX] = min(FUEL_CEILING_MLPH * fd // (1000 * fn), 0x3FFFFFFF) if f >= 0 and fn else 0x3FFFFFFF
        p[P_S_RPM] = roles.slot["rpm"]
        p[P_RPM_VALID] = roles.msg["rpm"] * STRIDE + VALID if roles.slot["rpm"] >= 0 else -1
        self.p = p

    # a run of fuel frames above the ceiling or with the engine stopped
    @property
    def fuel_implausible(self):
        return self.p[P_FUEL_RUN] >= FUEL_IMPLAUSIBLE_FRAMES

    def handler_kinds(self, roles, n):
        """Per message index, the H_* integration its frames run (as the
        loop's scanner dispatches them)."""
        kinds = bytearray(n)
        if roles.has("speed"):
            kinds[roles.msg["speed"]] = H_SPEED
        if roles.has("fuel_rate"):
            kinds[roles.msg["fuel_rate"]] = H_FUEL
        if roles.has("pack_v") and roles.has("pack_i"):
            kinds[roles.msg["pack_v"]] = H_PACK
        if roles.has("idle_stop"):
            kinds[roles.msg["idle_stop"]] = H_IDLE_STOP
        return kinds

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
        return acc[IDLE_STOP] * 10 + acc[IDLE_STOP + 1] // (IDLE_STOP_DIV // 10)
