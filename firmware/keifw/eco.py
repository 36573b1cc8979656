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

The whole update is one viper call (``step``, which is ``Eco.update``) over
the Eco's two preallocated buffers: ``st``, the state words (S_* layout),
and ``buf``, the ring of the last 600 samples followed by the level of each
score 0..100 (``level_of`` tabulated, so the thresholds live in one place).
Every value stays small: samples 0..100, the ring's sum at most 60 000, a
leaky sum below 16 * 106, the idling count held at 101.
"""

from array import array

import micropython
from micropython import const

HINTS = (b"smooth", b"ease_accel", b"coast", b"idle", b"slow_down")
H_SMOOTH = const(0)
H_ACCEL = const(1)
H_COAST = const(2)
H_IDLE = const(3)
H_SLOW = const(4)

_WINDOW = const(600)

# st (array('i')): the state words
S_POS = const(0)     # the ring slot the next sample goes to
S_N = const(1)       # samples in the ring (up to 600)
S_SUM = const(2)     # their sum
S_IDLE = const(3)    # consecutive idling ticks, held at 101 (only > 100 counts)
S_SAMPLE = const(4)  # the last sample
S_SCORE = const(5)
S_LEVEL = const(6)
S_HINT = const(7)
S_LEAK = const(8)    # 8..11: the leaky sums of H_ACCEL, H_COAST, H_IDLE, H_SLOW
N_ST = const(12)


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


@micropython.viper
def step(eco, ro, idling: int) -> int:
    """One 10 Hz sample into an Eco's state; returns the sample.

    ro: this tick's readings, an int array in keifw.inputs' O_* layout (the
    tick's Inputs.o): 1 v 0.01 km/h, 2 a cm/s2, 3 engine data valid, 4 rpm,
    6 pedal 0.1 % (-1 unknown), 7 boost 0.1 kPa (-1 none); rpm and boost
    count only with valid engine data. Each term tests its cap before it
    multiplies, so no product exceeds 6 000 whatever the input. State words
    are never negative; the readings are sign-fixed (a 64-bit port
    zero-extends the words it reads back).
    """
    r = ptr32(ro)
    v = r[1]
    if (v >> 31) == 1:
        v -= (v >> 31) << 16 << 16
    a = r[2]
    if (a >> 31) == 1:
        a -= (a >> 31) << 16 << 16
    pedal = r[6]
    if (pedal >> 31) == 1:
        pedal -= (pedal >> 31) << 16 << 16
    rpm = -1
    boost = -1
    if r[3]:
        rpm = r[4]
        if (rpm >> 31) == 1:
            rpm -= (rpm >> 31) << 16 << 16
        boost = r[7]
        if (boost >> 31) == 1:
            boost -= (boost >> 31) << 16 << 16
    st = ptr32(eco.st)
    buf = ptr8(eco.buf)
    p_accel = 0
    p_coast = 0
    if a >= 300:
        p_accel = 40
    elif a > 150:
        p_accel = (a - 150) * 40 // 150
    elif a <= -400:
        p_coast = 30
    elif a < -200:
        p_coast = (-200 - a) * 30 // 200
    if rpm >= 5000:
        p_accel += 25
    elif rpm > 3000:
        p_accel += (rpm - 3000) * 25 // 2000
    if pedal >= 1000:
        p_accel += 20
    elif pedal > 700:
        p_accel += (pedal - 700) * 20 // 300
    if boost >= 800:
        p_accel += 20
    elif boost > 300:
        p_accel += (boost - 300) * 20 // 500
    p_idle = 0
    if idling:
        n_idle = st[S_IDLE]
        if n_idle <= 100:
            n_idle += 1
            st[S_IDLE] = n_idle
        if n_idle > 100:
            p_idle = 30
    else:
        st[S_IDLE] = 0
    p_slow = 0
    if v >= 12000:
        p_slow = 40
    elif v > 9000:
        p_slow = (v - 9000) * 40 // 3000
    s = 100 - p_accel - p_coast - p_idle - p_slow
    if s < 0:
        s = 0
    st[S_SAMPLE] = s
    # the 60 s ring and its running sum
    pos = st[S_POS]
    n = st[S_N]
    total = st[S_SUM]
    if n == _WINDOW:
        total -= buf[pos]
    else:
        n += 1
        st[S_N] = n
    buf[pos] = s
    total += s
    st[S_SUM] = total
    pos += 1
    st[S_POS] = 0 if pos == _WINDOW else pos
    score = total // n
    st[S_SCORE] = score
    st[S_LEVEL] = buf[_WINDOW + score]
    # leaky sums (x - x/16 + p) and the hint: the largest above 80
    x = st[S_LEAK]
    x += p_accel - (x >> 4)
    st[S_LEAK] = x
    best = H_SMOOTH
    top = 80
    if x > top:
        top = x
        best = H_ACCEL
    x = st[S_LEAK + 1]
    x += p_coast - (x >> 4)
    st[S_LEAK + 1] = x
    if x > top:
        top = x
        best = H_COAST
    x = st[S_LEAK + 2]
    x += p_idle - (x >> 4)
    st[S_LEAK + 2] = x
    if x > top:
        top = x
        best = H_IDLE
    x = st[S_LEAK + 3]
    x += p_slow - (x >> 4)
    st[S_LEAK + 3] = x
    if x > top:
        best = H_SLOW
    st[S_HINT] = best
    return s


class Eco:
    def __init__(self):
        self.st = st = array("i", bytes(4 * N_ST))
        st[S_SAMPLE] = 100
        st[S_SCORE] = 100
        st[S_LEVEL] = level_of(100)
        st[S_HINT] = H_SMOOTH
        self.readings = array("i", bytes(4 * 8))  # update's arguments, in step's layout
        self.buf = buf = bytearray(_WINDOW + 101)
        for score in range(101):
            buf[_WINDOW + score] = level_of(score)

    @micropython.viper
    def update(self, v, a, rpm, pedal, boost, idling) -> int:
        """One sample from scalars (v 0.01 km/h, a cm/s2, rpm -1 unknown,
        pedal 0.1 % -1 unknown, boost 0.1 kPa -1 none): ``step`` over them
        put in the readings' layout. The 10 Hz tick calls ``step`` with its
        readings directly. Viper, not Python: a Python method with this
        many words of state takes its frame from the heap on every call."""
        r = ptr32(self.readings)
        r[1] = int(v)
        r[2] = int(a)
        r[3] = 1
        r[4] = int(rpm)
        r[6] = int(pedal)
        r[7] = int(boost)
        return int(step(self, self.readings, int(idling)))

    # read once per status line or transmitted frame: from the state words
    @property
    def score(self):
        return self.st[S_SCORE]

    @property
    def level(self):
        return self.st[S_LEVEL]

    @property
    def hint(self):
        return self.st[S_HINT]

    @property
    def sample(self):
        return self.st[S_SAMPLE]

    @property
    def samples(self):
        """Samples in the 60 s window (0: no score to show)."""
        return self.st[S_N]
