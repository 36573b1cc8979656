"""The few things that differ between MicroPython (boards, unix port) and CPython.

Everything else in keifw is plain Python that both run unchanged: modules
write ``from micropython import const`` and ``@micropython.viper`` as on a
board (MicroPython's compiler folds ``const`` and compiles viper by those
spellings). On CPython this module, imported first by the package, stands in
for the ``micropython`` module and for viper's pointer casts, so the same
code runs as plain functions with the same integer results. It also carries
the clock helpers.
"""

try:
    import micropython  # noqa: F401

    MICROPYTHON = True
except ImportError:  # CPython: the host tests and the SIL's cpython runtime
    import builtins
    import sys
    import types

    MICROPYTHON = False

    def _unchanged(value):
        return value

    _stand_in = types.ModuleType("micropython")
    for _name in ("const", "viper", "native"):
        setattr(_stand_in, _name, _unchanged)
    sys.modules["micropython"] = _stand_in
    # viper's casts and annotations: ptr8(buf) is buf itself on CPython
    for _cast in ("ptr8", "ptr16", "ptr32"):
        setattr(builtins, _cast, _unchanged)

try:
    from time import ticks_us as _ticks_us
except ImportError:  # CPython
    from time import perf_counter_ns as _perf_ns  # pyright: ignore[reportAttributeAccessIssue]  (CPython's time)

    def _ticks_us():
        return _perf_ns() // 1000


# The firmware's clock is microseconds modulo 2**30 on every platform: the
# period of ticks_us() on 32-bit boards, and a value that always stays a small
# int on a 31-bit MicroPython. Differences go through tdiff(), valid for spans
# shorter than 2**29 us (about 8.9 minutes).
TICKS_MASK = 0x3FFFFFFF
TICKS_HALF = 0x20000000


def now_us():
    return _ticks_us() & TICKS_MASK


# Both are written so that no intermediate leaves -2**30 .. 2**30 - 1 (a
# 32-bit board's small ints): a - b of two clock values always fits, while
# a - b + TICKS_HALF or a + d past the period would box a heap long.
def tdiff(a, b):
    """a - b on the wrapping 30-bit microsecond clock, as a signed int."""
    d = a - b
    if d >= TICKS_HALF:
        return d - TICKS_MASK - 1
    if d < -TICKS_HALF:
        return d + TICKS_MASK + 1
    return d


def tadd(a, d):
    """a + d on the wrapping clock, for a clock value a and 0 <= d <= TICKS_MASK."""
    if a > TICKS_MASK - d:
        return a - (TICKS_MASK - d) - 1
    return a + d

