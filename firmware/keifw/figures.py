"""Economy figures from the integer accumulators: km/L, L/100 km, mpg, Wh/km,
and the instantaneous (1 s) and rolling (300 s) km/L windows.

Every ratio is a long division (keifw.fixed) so no intermediate reaches
2**30; results are fixed point (x100, x1000, x10 as named) or negative
when the figure cannot be computed.
"""

from array import array

import micropython
from micropython import const

from .fixed import ODO_PERIOD, ratio_digits, ratio_milli

WINDOW_S = const(300)
_SLOTS = const(301)  # WINDOW_S + 1 snapshots: the ends of a 300 s window
_ODO = const(1048576000)  # fixed.ODO_PERIOD, folded into the viper code
# Windows.snaps (array('i')): the next slot, snapshots held, then the mm and the uL rings
_W_POS = const(0)
_W_N = const(1)
_W_DIST = const(2)
_W_FUEL = const(2 + _SLOTS)


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


@micropython.viper
def _second(self, econ, ok) -> int:
    """Windows.second: this second's odometers into the rings, then km/L x 100
    over the last 1 s and the last 300 s (-1: no figure; -2: distance on no
    fuel, coasting on fuel cut), capped at 204.75. Ring words are odometer
    readings, never negative (a 64-bit port zero-extends the words it reads)."""
    d = int(econ.dist_odo())
    f = int(econ.fuel_odo())
    w = ptr32(self.snaps)
    p = w[_W_POS]
    n = w[_W_N]
    w[_W_DIST + p] = d
    w[_W_FUEL + p] = f
    instant = -1
    rolling = -1
    if n >= 1 and bool(ok):
        k = 0
        while k < 2:  # the newest snapshot before this one, then the oldest
            j = p - 1 if k == 0 else p - n
            if j < 0:
                j += _SLOTS
            dmm = d - w[_W_DIST + j]
            if dmm < 0:
                dmm += _ODO
            ful = f - w[_W_FUEL + j]
            if ful < 0:
                ful += _ODO
            x = -1
            if ful <= 0:
                if dmm > 0:
                    x = -2
            elif ful < 100000000:
                x = int(ratio_digits(dmm, ful, 2))  # mm / uL = km/L
                if x > 20475:
                    x = 20475
            if k == 0:
                instant = x
            else:
                rolling = x
            k += 1
    self.instant_x100 = instant
    self.rolling_x100 = rolling
    p += 1
    w[_W_POS] = 0 if p == _SLOTS else p
    if n < WINDOW_S:
        w[_W_N] = n + 1
    return 0


class Windows:
    """Per-second snapshots of the wrapping mm / uL odometers: the last 1 s
    (instant) and the last 300 s (rolling) km/L."""

    def __init__(self):
        assert _ODO == ODO_PERIOD and _SLOTS == WINDOW_S + 1
        self.snaps = array("i", bytes(4 * (_W_FUEL + _SLOTS)))
        self.instant_x100 = -1
        self.rolling_x100 = -1

    # second(econ, ok): one second passed; ok: speed and fuel rate valid (else
    # no figure). The viper function itself: a Python method around it would
    # cost a call more, once a second.
    second = _second
