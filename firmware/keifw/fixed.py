"""Integer fixed-point helpers that keep every value below 2**30.

On a 32-bit board MicroPython's small ints are 31-bit signed: anything that
reaches 2**30 becomes a heap-allocated long. Accumulators are therefore
split into a whole part and an exact remainder (see economy.py), and ratios
are long divisions whose intermediate values stay below 10 * divisor.
"""

import micropython
from micropython import const

LIMIT = const(0x3FFFFFFF)
# A wrapping "odometer" period for millimetres / microlitres: 2**20 * 1000,
# below 2**30, so differences over a window stay exact (see economy.py).
ODO_PERIOD = const(1048576000)


@micropython.viper
def ratio_digits(num: int, den: int, digits: int) -> int:
    """num * 10**digits // den for 0 <= num < 2**30, 0 < den < 10**8.
    Viper: a status line's trip km/L in the bytecode loop cost ~7,000
    Cortex-M instructions; every intermediate stays below 10**9."""
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


def small(x):
    """x as a small int. A frozen image keeps the ints of constant tuples
    beyond 14 bits (MicroPython's mpy-tool.py: 8851 in a profile tuple) as
    read-only long objects, and every arithmetic use of one allocates a
    temporary long; one operation at start-up gives the small int back."""
    return x + 0


def ratio_milli(whole, milli, den, digits):
    """(whole + milli / 1000) * 10**digits // den, for digits >= 3,
    0 <= whole < 2**30, 0 <= milli < 1000, 0 < den < 10**8: one long division
    over the digits of whole.milli, so nothing is truncated twice."""
    q = whole // den
    r = whole - q * den
    p = 100
    while digits > 0:
        x = milli // p % 10 if p else 0
        p //= 10
        r = r * 10 + x
        d = r // den
        r -= d * den
        q = q * 10 + d
        digits -= 1
        if q > 100000000:  # saturate, as ratio_digits
            return 100000000
    return q


def scale_of(gen, slot, unit):
    """(A, B, C) so that (raw * A + B) // C is the physical value times ``unit``.

    From the generated module's exact SCALE/OFFSET fractions, in the role's
    unit (vehicle.scaled); reduced so the products stay small.
    """
    from .vehicle import scaled  # vehicle.py imports gcd from here

    sn, sd, on, od = scaled(gen, slot)
    a = sn * unit * od
    b = on * sd * unit
    c = sd * od
    g = gcd(gcd(abs(a), abs(b)), c)
    return a // g, b // g, c // g


def gcd(a, b):
    while b:
        a, b = b, a % b
    return a if a else 1
