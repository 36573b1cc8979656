"""Economy figures from the integer accumulators: km/L, L/100 km, mpg, Wh/km,
and the instantaneous (1 s) and rolling (300 s) km/L windows.

Every ratio is a long division (keifw.fixed) so no intermediate reaches
2**30; results are fixed point (x100, x1000, x10 as named) or negative
when the figure cannot be computed.
"""

from array import array

from micropython import const

from .fixed import ratio_digits, ratio_milli, ODO_PERIOD

WINDOW_S = const(300)


def trip_kmpl_x1000(econ):
    """Trip km/L x 1000 from metres and 10 uL units (-1 when no fuel)."""
    m = econ.dist_m()
    ml = econ.fuel_ml()
    if ml < 1000000:
        f10 = ml * 100 + econ.fuel_sub_ul() // 10
        if f10 <= 0:
            return -1
        return ratio_digits(m, f10, 5)
    return ratio_digits(m, ml, 3)


def mpg_x100(k):
    """US mpg x 100 from km/L x 1000: x 2.352146 (3.785411784 L/gal / 1.609344 km/mi)."""
    return (2 * k + k * 3521 // 10000 + k * 46 // 10000000) // 10


def wh_per_km_x10(econ):
    """Net pack energy per distance, Wh/km x 10 (None before the first metre).

    One long division of the whole Wh.mWh figure: truncating the Wh and the
    mWh parts separately lost up to a unit each (-16 % on a hybrid, whose
    net energy is small)."""
    m = econ.dist_m()
    if m <= 0:
        return None
    w = econ.net_wh()
    mw = econ.net_sub_mwh()
    neg = w < 0
    if neg:
        w, mw = -w - 1, 1000 - mw
        if mw == 1000:
            w, mw = w + 1, 0
    r = ratio_milli(w, mw, m, 4)
    return -r if neg else r


def kmpl_x100(dmm, ful):
    """km/L x 100 over a window of odometer differences (mm, uL; they wrap)."""
    if dmm < 0:
        dmm += ODO_PERIOD
    if ful < 0:
        ful += ODO_PERIOD
    if ful <= 0:
        return -2 if dmm > 0 else -1  # -2: coasting on fuel cut
    if ful >= 100000000:
        return -1
    r = ratio_digits(dmm, ful, 2)  # mm / uL = km/L
    return r if r < 20475 else 20475


class Windows:
    """Per-second snapshots of the wrapping mm / uL odometers: the last 1 s
    (instant) and the last 300 s (rolling) km/L."""

    def __init__(self):
        self.dist = array("i", bytes(4 * (WINDOW_S + 1)))
        self.fuel = array("i", bytes(4 * (WINDOW_S + 1)))
        self.pos = 0
        self.n = 0
        self.instant_x100 = -1
        self.rolling_x100 = -1

    def second(self, econ, ok):
        """One second passed; ok: speed and fuel rate valid (else no figure)."""
        d = econ.dist_odo()
        f = econ.fuel_odo()
        p = self.pos
        self.dist[p] = d
        self.fuel[p] = f
        n = self.n
        last = (p - 1) % (WINDOW_S + 1)
        first = (p - n) % (WINDOW_S + 1)
        self.instant_x100 = -1
        self.rolling_x100 = -1
        if n >= 1 and ok:
            self.instant_x100 = kmpl_x100(d - self.dist[last], f - self.fuel[last])
            self.rolling_x100 = kmpl_x100(d - self.dist[first], f - self.fuel[first])
        self.pos = (p + 1) % (WINDOW_S + 1)
        if n < WINDOW_S:
            self.n = n + 1
