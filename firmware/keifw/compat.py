"""The few things that differ between MicroPython (boards, unix port) and CPython.

Everything else in keifw is plain Python that both run unchanged. Hot-path
modules import ``const`` the MicroPython way (try/except) so the compiler
still folds the constants; this module carries the clock helpers.
"""

try:
    import micropython  # noqa: F401

    MICROPYTHON = True
except ImportError:  # CPython: the host tests and the SIL's cpython runtime
    MICROPYTHON = False

try:
    from time import ticks_us as _ticks_us
except ImportError:  # CPython
    from time import perf_counter_ns as _perf_ns

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


def tdiff(a, b):
    """a - b on the wrapping 30-bit microsecond clock, as a signed int."""
    return ((a - b + TICKS_HALF) & TICKS_MASK) - TICKS_HALF


def tadd(a, d):
    return (a + d) & TICKS_MASK

