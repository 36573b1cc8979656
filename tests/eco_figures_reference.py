"""The eco score, ratio_digits and the km/L windows as they were before the
viper rewrite (commit cfc9719, plain Python, unchanged but for const()):
the differential reference of test_fw_eco_viper.py."""

from array import array

ODO_PERIOD = 1048576000
WINDOW_S = 300


def ratio_digits(num, den, digits):
    """num * 10**digits // den for 0 <= num < 2**30, 0 < den < 10**8."""
    q = num // den
    r = num - q * den
    while digits > 0:
        r *= 10
        d = r // den
        r -= d * den
        q = q * 10 + d
        digits -= 1
        if q > 100000000:  # saturate: the figure is meaningless anyway
            return 100000000
    return q


HINTS = (b"smooth", b"ease_accel", b"coast", b"idle", b"slow_down")
H_SMOOTH = 0
H_ACCEL = 1
H_COAST = 2
H_IDLE = 3
H_SLOW = 4

_WINDOW = 600


def level_of(score):
    if score >= 90:
        return 5
    if score >= 75:
        return 4
    if score >= 60:
        return 3
    if score >= 45:
        return 2
    if score >= 30:
        return 1
    return 0


class Eco:
    def __init__(self):
        self.ring = bytearray(_WINDOW)
        self.pos = 0
        self.n = 0
        self.sum = 0
        self.leak = [0, 0, 0, 0, 0]
        self.idle_ticks = 0
        self.score = 100
        self.level = 5
        self.hint = H_SMOOTH
        self.sample = 100

    def update(self, v, a, rpm, pedal, boost, idling):
        """v: 0.01 km/h; a: cm/s2; rpm (-1 unknown); pedal 0.1 % (-1); boost 0.1 kPa (-1 none)."""
        p_accel = 0
        p_coast = 0
        p_idle = 0
        p_slow = 0
        if a > 150:
            p_accel = (a - 150) * 40 // 150
            if p_accel > 40:
                p_accel = 40
        elif a < -200:
            p_coast = (-a - 200) * 30 // 200
            if p_coast > 30:
                p_coast = 30
        if rpm > 3000:
            p = (rpm - 3000) * 25 // 2000
            p_accel += p if p < 25 else 25
        if pedal > 700:
            p = (pedal - 700) * 20 // 300
            p_accel += p if p < 20 else 20
        if boost > 300:
            p = (boost - 300) * 20 // 500
            p_accel += p if p < 20 else 20
        if idling:
            self.idle_ticks += 1
            if self.idle_ticks > 100:
                p_idle = 30
        else:
            self.idle_ticks = 0
        if v > 9000:
            p_slow = (v - 9000) * 40 // 3000
            if p_slow > 40:
                p_slow = 40
        s = 100 - p_accel - p_coast - p_idle - p_slow
        if s < 0:
            s = 0
        self.sample = s
        ring = self.ring
        pos = self.pos
        if self.n == _WINDOW:
            self.sum -= ring[pos]
        else:
            self.n += 1
        ring[pos] = s
        self.sum += s
        pos += 1
        self.pos = 0 if pos == _WINDOW else pos
        self.score = self.sum // self.n
        self.level = level_of(self.score)
        leak = self.leak
        leak[1] += p_accel - (leak[1] >> 4)
        leak[2] += p_coast - (leak[2] >> 4)
        leak[3] += p_idle - (leak[3] >> 4)
        leak[4] += p_slow - (leak[4] >> 4)
        best = H_SMOOTH
        top = 80
        for k in range(1, 5):
            if leak[k] > top:
                top = leak[k]
                best = k
        self.hint = best
        return s


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
