"""Fuel flow from OBD-II Mode 01 PIDs, in 31-bit integer arithmetic.

Three methods, chosen by what the engine ECU supports (best first):

* ``obd_fuel_rate``: PID 0x5E engine fuel rate, 0.05 L/h.
* ``obd_maf``: PID 0x10 mass air flow (0.01 g/s) over the stoichiometric
  AFR times the commanded lambda (PID 0x44, 2/65536 per bit, where offered),
  zero in deceleration fuel cut.
* ``obd_speed_density``: air from manifold pressure (0x0B, kPa), intake
  temperature (0x0F, degC + 40) and rpm (0x0C, 1/4 rpm) through the ideal gas
  law with the displacement and the volumetric efficiency of the config:
  ``air = VE * MAP * Vd * (rpm / 120) / (R * T)``.

Fuel-cut: fuel system status (0x03) reporting open loop for load or fuel cut
(4) with lambda >= 1 (or, without 0x44, the throttle (0x11) closed) means no
fuel. All rates are mL/h.
"""

from micropython import const

from . import economy as _econ
from .compat import tdiff
from .inputs import O_FALLBACK, O_LEADER, O_SPEED_OK

# gasoline: stoichiometric AFR 14.7, density 0.745 kg/L (JIS K2202 regular):
# 3600 / (14.7 * 0.745) = 328.72 mL/h per g/s of air
_MLPH_PER_GS_X100 = const(32872)
LAMBDA_ONE = const(32768)     # PID 0x44 raw for lambda = 1
LAMBDA_MIN = const(16384)     # lambda 0.5
FUEL_OPEN_LOAD_OR_CUT = const(4)
THROTTLE_CLOSED_RAW = const(8)  # PID 0x11 raw (x 100 / 255 %): about 3 %

METHOD_NONE = const(0)
METHOD_FUEL_RATE = const(1)
METHOD_MAF = const(2)
METHOD_SPEED_DENSITY = const(3)
METHOD_NAMES = (b"none", b"obd_fuel_rate", b"obd_maf", b"obd_speed_density")


def muldiv(a, b, c):
    """a * b // c for 0 <= a < 2**21, 0 <= b < 2**30, 0 < c < 2**21 and a
    result below 2**30: byte-wise long multiplication, every partial below
    2**30."""
    q = 0
    r = 0
    shift = 24
    while shift >= 0:
        x = r * 256 + a * ((b >> shift) & 0xFF)
        q = q * 256 + x // c
        r = x % c
        shift -= 8
    return q


def from_fuel_rate(raw):
    """PID 0x5E raw (0.05 L/h) -> mL/h."""
    return raw * 50


def from_air(maf_x1000, lam_raw):
    """Air (g/s x 1000) and commanded lambda raw (<= 0: not offered,
    stoichiometric) -> fuel mL/h, rounded. Air is capped at 1500 g/s and
    lambda below 0.5 taken as 0.5 (no gasoline engine is commanded richer),
    which keeps every intermediate below 2**30."""
    maf_x1000 = min(maf_x1000, 1500000)
    ul = muldiv(maf_x1000, _MLPH_PER_GS_X100, 100)  # uL/h, < 4.94e8
    if lam_raw > 0:
        ul = muldiv(LAMBDA_ONE, ul, max(LAMBDA_MIN, lam_raw))
    return (ul + 500) // 1000


def speed_density_air(map_kpa, iat_raw, rpm_x4, ve_pct, vd_cc):
    """Air in g/s x 1000 from MAP (kPa, <= 255), IAT raw (degC + 40), rpm raw
    (1/4 rpm, < 65536), VE (%, <= 120) and displacement (cc, <= 3000).

    g/s = VE% * MAP * Vd * rpm_x4 / (13 778 400 * T) with R = 287.05 J/(kg K)
    (4 * 120 * 287.05 * 100 = 13 778 400), T = IAT + 273 K."""
    x = map_kpa * vd_cc * ve_pct          # < 2**30
    y = muldiv(rpm_x4, x, 13778)          # x * rpm_x4 / 13778.4, below 2**30
    t_k = iat_raw + 233                   # (raw - 40) + 273
    m = (y + t_k // 2) // t_k
    return min(2097151, m)


def fuel_cut(status, lam_raw, throttle_raw):
    """Deceleration fuel cut as an OBD-II tester can tell it: status 4 (open
    loop for load or fuel cut) while the mixture is not enriched (lambda >= 1)
    or, without lambda, with the throttle closed."""
    if status != FUEL_OPEN_LOAD_OR_CUT:
        return False
    if lam_raw > 0:
        return lam_raw >= LAMBDA_ONE
    return 0 <= throttle_raw <= THROTTLE_CLOSED_RAW


HOLD_US = const(1000000)      # replies further apart integrate nothing
# 50 L/h: a 660 cc engine at full load burns under 25; the cap keeps
# (rate + rate) x 10 000 (HOLD_US in 100 us) below 2**30
MAX_RATE_MLPH = const(50000)


class Integrator:
    """Distance (km/h samples) and fuel (mL/h samples) into the economy's
    exact (whole, remainder) accumulators, each a trapezoid between its
    consecutive samples at most HOLD_US apart (a reply without one of them
    is skipped, not a break); odd half-units carried, nothing drifts. The
    distance counts while the firmware's speed fusion trusts this source
    (``o``: the tick's readings, ``group``: its source group; both set when
    the client joins the firmware), into FALLBACK_DIST too when it is a
    fallback (O_FALLBACK); the fuel counts whatever the speed, as idle fuel
    too while the last two speeds were 0."""

    def __init__(self, econ):
        self.econ = econ
        self.dist_k = econ.dist_div // 36000  # remainder units per (km/h x 100 us), twice
        self.can_fuel = econ.fuel_div == 36000000  # 1 mL = (mL/h x 100 us) x 36e6
        self.o = None
        self.group = 0
        self.have_prev = False  # a speed sample to integrate from
        self.t_prev = 0
        self.v_prev = 0
        self.stopped = False    # the last two speed samples were 0
        self.have_fuel = False  # ... a fuel sample
        self.t_fuel = 0
        self.f_prev = 0
        self.dist_half = 0
        self.fuel_half = 0

    def reset(self):
        """A silence: the next samples start afresh."""
        self.have_prev = False
        self.have_fuel = False

    def add(self, t, speed, rate):
        """Samples at firmware time t (us): speed km/h, fuel mL/h (-1: not
        in this reply)."""
        econ = self.econ
        acc = econ.acc
        if speed >= 0:
            dt = tdiff(t, self.t_prev)
            if self.have_prev and 0 < dt <= HOLD_US:
                o = self.o
                if o is None or (o[O_SPEED_OK] and o[O_LEADER] == self.group):
                    x = (self.v_prev + speed) * (dt // 100) * self.dist_k + self.dist_half
                    self.dist_half = x & 1
                    _carry(acc, _econ.DIST, x >> 1, econ.dist_div)
                    if o is not None and o[O_FALLBACK]:
                        _carry(acc, _econ.FALLBACK_DIST, x >> 1, econ.dist_div)
            self.stopped = speed == 0 and self.v_prev == 0
            self.have_prev = True
            self.t_prev = t
            self.v_prev = speed
        if rate >= 0:
            rate = min(rate, MAX_RATE_MLPH)
            dt = tdiff(t, self.t_fuel)
            if self.have_fuel and 0 < dt <= HOLD_US:
                y = (self.f_prev + rate) * (dt // 100) + self.fuel_half
                self.fuel_half = y & 1
                _carry(acc, _econ.FUEL, y >> 1, econ.fuel_div)
                if self.stopped:
                    _carry(acc, _econ.IDLE_FUEL, y >> 1, econ.fuel_div)
            self.have_fuel = True
            self.t_fuel = t
            self.f_prev = rate


def _carry(acc, i, add, div):
    r = acc[i + 1] + add
    if r >= div:
        q = r // div
        acc[i] += q
        r -= q * div
    acc[i + 1] = r
