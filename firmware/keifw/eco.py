"""Eco-drive score 0-100, level 0-5 and a one-word hint (documented in docs/firmware.md).

Evaluated at 10 Hz from valid data only. Each sample starts at 100 points and
loses penalty points (integers, each capped):

=============  ======================================  ====  ==========
term           condition                               cap   hint
=============  ======================================  ====  ==========
hard accel     a > 1.5 m/s2, full at 3.0 m/s2          40    ease_accel
hard braking   a < -2.0 m/s2, full at -4.0 m/s2        30    coast
engine speed   rpm > 3000, full at 5000 (engine cars)  25    ease_accel
load           pedal > 70 %, full at 100 %             20    ease_accel
boost          boost > 30 kPa, full at 80 kPa          20    ease_accel
idling         engine idling > 10 s while stopped      30    idle
high speed     v > 90 km/h, full at 120 km/h           40    slow_down
=============  ======================================  ====  ==========

sample = max(0, 100 - sum). The score is the mean of the last 600 samples
(60 s). Level: >= 90 -> 5, >= 75 -> 4, >= 60 -> 3, >= 45 -> 2, >= 30 -> 1,
else 0. The hint is the category whose leaky sum (x - x/16 + p per sample,
about 1.6 s memory) is largest and above 80 (about 5 points sustained),
else ``smooth``.
"""

from micropython import const

HINTS = (b"smooth", b"ease_accel", b"coast", b"idle", b"slow_down")
H_SMOOTH = const(0)
H_ACCEL = const(1)
H_COAST = const(2)
H_IDLE = const(3)
H_SLOW = const(4)

_WINDOW = const(600)


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
