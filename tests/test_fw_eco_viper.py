"""The eco score (keifw/eco.py), ratio_digits (keifw/fixed.py) and the km/L
windows (keifw/figures.py), now viper, against their previous plain-Python
implementations (tests/eco_figures_reference.py, commit cfc9719), tick by
tick on long random and adversarial input sequences: in CPython (hypothesis;
viper functions run there as plain Python) and compiled by MicroPython's
viper emitter in the unix port ($KEIDRIVE_MICROPYTHON: the 32-bit build too),
under heap_lock.

Inputs stay within what the tick can hand over: 32-bit words in CPython;
in MicroPython below 2**30 in magnitude, since a larger one is a heap long on
a 32-bit port before the call is made."""

import random
import sys
from array import array

import eco_figures_reference as ref
from conftest import micropython_or_skip, run_micropython
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keidrive.paths import firmware_dir

FW = str(firmware_dir())
if FW not in sys.path:
    sys.path.insert(0, FW)

from keifw import eco, figures, fixed  # the firmware package, from its folder

I32 = (-(1 << 31), (1 << 31) - 1)
SMALL = (-(1 << 30) + 1, (1 << 30) - 1)
# each input's thresholds (where a term starts and where it saturates), its usual range
EDGES = {
    "v": (9000, 12000),
    "a": (150, 300, -200, -400),
    "rpm": (3000, 5000, -1),
    "pedal": (700, 1000, -1),
    "boost": (300, 800, -1),
}
USUAL = {"v": (-100, 15000), "a": (-600, 600), "rpm": (-1, 7000), "pedal": (-1, 1100), "boost": (-1, 1000)}


def _value(rng, name, bounds):
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(EDGES[name]) + rng.randint(-3, 3)
    if roll < 0.9:
        return rng.randint(*USUAL[name])
    return rng.choice((bounds[0], bounds[1], rng.randint(*bounds)))


def eco_ticks(seed, n, bounds):
    """n ticks of (v, a, rpm, pedal, boost, idling): held for runs of 1..600
    ticks, so idling passes 10 s and the 60 s ring wraps; 5 runs in 16 calm
    but for one input (so each hint gets to lead), 2 in 16 all calm (so the
    score reaches the top level)."""
    rng = random.Random(seed)
    ticks = []
    calm = (5000, 0, 2000, 300, 0)
    while len(ticks) < n:
        alone = rng.randrange(16)
        held = tuple(_value(rng, name, bounds) if alone >= 7 or alone == k else calm[k]
                     for k, name in enumerate(EDGES)) + (int(alone not in (5, 6) and rng.random() < 0.4),)
        ticks.extend([held] * rng.choice((1, 1, 2, 5, 30, 120, 300, 600)))
    return ticks[:n]


def reference_eco(ticks):
    e = ref.Eco()
    out = []
    for t in ticks:
        s = e.update(*t)
        out.append((s, e.score, e.level, e.hint))
    return out


# --- CPython ---------------------------------------------------------------

_i32 = st.integers(*I32)


def _near(name):
    return st.sampled_from(EDGES[name]).flatmap(lambda x: st.integers(x - 3, x + 3))


_tick = st.tuples(
    *(st.one_of(_near(name), st.integers(*USUAL[name]), _i32) for name in EDGES),
    st.booleans(),
    st.sampled_from((1, 3, 40, 150, 400)),  # held for that many ticks
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_tick, min_size=1, max_size=40))
def test_eco_matches_the_previous_implementation_in_cpython(segments):
    ticks = [t[:6] for t in segments for _ in range(t[6])]
    e = eco.Eco()
    got = []
    for t in ticks:
        s = e.update(*t)
        got.append((s, e.score, e.level, e.hint))
    assert got == reference_eco(ticks)
    assert e.sample == got[-1][0]


def test_eco_starts_as_before():
    e, r = eco.Eco(), ref.Eco()
    assert (e.sample, e.score, e.level, e.hint) == (r.sample, r.score, r.level, r.hint)
    assert [eco.level_of(s) for s in range(-5, 106)] == [ref.level_of(s) for s in range(-5, 106)]


def test_eco_state_stays_small():
    """The largest penalties held (every accel term: 105 points a tick, and
    the other three at their caps), then none: the leaky sums settle below
    16 * 106, the ring's sum never passes 600 * 100, the idling count holds."""
    e = eco.Eco()
    worst = (13000, 1000, 9000, 1000, 1000, True)
    calm = (5000, 0, 2000, 300, 0, False)
    top = [0] * eco.N_ST
    for t in [worst] * 3000 + [(13000, -1000, -1, -1, -1, True)] * 3000 + [calm] * 1200:
        e.update(*t)
        top = [max(x, y) for x, y in zip(top, e.st)]
    assert max(top[eco.S_LEAK:eco.S_LEAK + 4]) < 16 * 106
    assert top[eco.S_SUM] == 600 * 100 and top[eco.S_IDLE] == 101 and top[eco.S_N] == 600
    assert (e.sample, e.score, e.hint) == (100, 100, eco.H_SMOOTH)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, (1 << 30) - 1), st.integers(1, (1 << 30) - 1), st.integers(0, 8))
def test_ratio_digits_matches_the_previous_implementation_in_cpython(num, den, digits):
    assert fixed.ratio_digits(num, den, digits) == ref.ratio_digits(num, den, digits)


class Odometers:
    """Economy's dist_odo / fuel_odo, replayed from a list of readings."""

    def __init__(self, readings):
        self.readings = readings
        self.k = 0

    def dist_odo(self):
        return self.readings[self.k][0]

    def fuel_odo(self):
        return self.readings[self.k][1]


def odometer_seconds(seed, n):
    """n seconds of (mm, uL, ok) odometer readings, wrapping at ODO_PERIOD:
    cruising, idling, coasting on fuel cut, standing still, a window of more
    than 100 L, a reading that steps back."""
    rng = random.Random(seed)
    d = rng.randrange(fixed.ODO_PERIOD)
    f = rng.randrange(fixed.ODO_PERIOD)
    out = []
    while len(out) < n:
        kind = rng.randrange(6)
        for _ in range(rng.choice((1, 3, 20, 301))):
            dd, ff = [(rng.randint(0, 40000), rng.randint(0, 3000)), (0, rng.randint(0, 400)),
                      (rng.randint(1, 30000), 0), (0, 0), (rng.randint(0, 10 ** 6), rng.randint(3 * 10 ** 5, 10 ** 6)),
                      (-rng.randint(0, 10 ** 4), -rng.randint(0, 10 ** 4))][kind]
            d = (d + dd) % fixed.ODO_PERIOD
            f = (f + ff) % fixed.ODO_PERIOD
            out.append((d, f, int(rng.random() < 0.9)))
    return out[:n]


def reference_windows(seconds):
    w = ref.Windows()
    econ = Odometers(seconds)
    out = []
    for k, (_, _, ok) in enumerate(seconds):
        econ.k = k
        w.second(econ, ok)
        out.append((w.instant_x100, w.rolling_x100))
    return out


def test_windows_match_the_previous_implementation_in_cpython():
    for seed in range(3):
        seconds = odometer_seconds(seed, 2000)
        w = figures.Windows()
        econ = Odometers(seconds)
        got = []
        for k, (_, _, ok) in enumerate(seconds):
            econ.k = k
            w.second(econ, ok == 1)
            got.append((w.instant_x100, w.rolling_x100))
        assert got == reference_windows(seconds)
        assert {x for pair in got for x in pair} >= {-2, -1, 20475}  # each edge taken


# --- MicroPython (viper compiled), under heap_lock -----------------------------

MP_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from array import array
import micropython
from keifw.eco import Eco
from keifw.fixed import ratio_digits
from keifw.figures import Windows
import os
def load(path):
    words = array("i", bytes(os.stat(path)[6]))  # MicroPython: a bytes initialiser is the raw words
    with open(path, "rb") as f:
        f.readinto(words)
    return words
ev, rt, wn = load(sys.argv[2]), load(sys.argv[3]), load(sys.argv[4])
out_e = array("i", bytes(4 * (len(ev) // 6 * 4)))
out_r = array("i", bytes(4 * (len(rt) // 3)))
out_w = array("i", bytes(4 * (len(wn) // 3 * 2)))
class Odo:
    def __init__(self):
        self.k = 0
    def dist_odo(self):
        return wn[self.k]
    def fuel_odo(self):
        return wn[self.k + 1]
e = Eco()
w = Windows()
odo = Odo()
def run():
    for k in range(len(ev) // 6):
        o = 6 * k
        s = e.update(ev[o], ev[o + 1], ev[o + 2], ev[o + 3], ev[o + 4], ev[o + 5])
        out_e[4 * k] = s
        out_e[4 * k + 1] = e.score
        out_e[4 * k + 2] = e.level
        out_e[4 * k + 3] = e.hint
    for k in range(len(rt) // 3):
        out_r[k] = ratio_digits(rt[3 * k], rt[3 * k + 1], rt[3 * k + 2])
    for k in range(len(wn) // 3):
        odo.k = 3 * k
        w.second(odo, wn[3 * k + 2])
        out_w[2 * k] = w.instant_x100
        out_w[2 * k + 1] = w.rolling_x100
micropython.heap_lock()
run()
micropython.heap_unlock()
for path, words in zip(sys.argv[2:], (out_e, out_r, out_w)):
    with open(path + ".out", "wb") as f:
        f.write(words)
print("ok")
"""


def _mp(tmp_path, eco_ticks_=(), ratios=(), seconds=()):
    """The three runs in MicroPython; their inputs as 32-bit words in files."""
    micropython_or_skip()
    paths = []
    for name, rows in (("eco", eco_ticks_), ("ratio", ratios), ("windows", seconds)):
        path = tmp_path / f"{name}.i32"
        path.write_bytes(array("i", [x for row in rows for x in row]).tobytes())
        paths.append(str(path))
    assert run_micropython(MP_SCRIPT, FW, *paths, timeout=300).strip() == "ok"
    results = []
    for path in paths:
        words = array("i")
        with open(path + ".out", "rb") as f:
            words.frombytes(f.read())
        results.append(list(words))
    return results


def _rows(flat, width):
    return [tuple(flat[k:k + width]) for k in range(0, len(flat), width)]


def test_eco_in_viper_matches_the_previous_implementation(tmp_path):
    hints, levels = set(), set()
    for seed in (1, 2):
        ticks = eco_ticks(seed, 8000, SMALL)
        got = _rows(_mp(tmp_path, eco_ticks_=ticks)[0], 4)
        want = reference_eco(ticks)
        first_bad = next((k for k in range(len(want)) if got[k] != want[k]), None)
        assert first_bad is None, (seed, first_bad, ticks[first_bad], got[first_bad], want[first_bad])
        hints |= {h for _, _, _, h in want}
        levels |= {lv for _, _, lv, _ in want}
    assert hints == {0, 1, 2, 3, 4} and levels == {0, 1, 2, 3, 4, 5}  # every outcome was compared


def test_ratio_digits_in_viper_matches_the_previous_implementation(tmp_path):
    rng = random.Random(7)
    cases = []
    for _ in range(3000):
        den = rng.choice((rng.randint(1, 100), rng.randint(1, 10 ** 8), rng.randint(214748360, 214748370),
                          rng.randint(214748365, (1 << 30) - 1)))
        num = rng.choice((rng.randint(0, (1 << 30) - 1), den * rng.randint(0, 10 ** 7) // 1000,
                          10 ** 7 * den + rng.randint(-den, den), rng.randint(0, den)))
        num = min(max(num, 0), (1 << 30) - 1)
        cases.append((num, den, rng.randint(0, 8)))
    got = _mp(tmp_path, ratios=cases)[1]
    assert got == [ref.ratio_digits(*c) for c in cases]


def test_windows_in_viper_match_the_previous_implementation(tmp_path):
    seconds = odometer_seconds(5, 3000)
    got = _rows(_mp(tmp_path, seconds=seconds)[2], 2)
    want = reference_windows(seconds)
    assert got == want
    assert {x for pair in want for x in pair} >= {-2, -1, 20475}
