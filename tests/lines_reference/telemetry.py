"""JSON-lines telemetry formatted into one preallocated bytearray.

Numbers are written from integers (fixed point with a given number of
decimals), keys and names are bytes built once at start-up, so writing a
status line allocates nothing on MicroPython. The line goes out with the
stream extension ``write(buf, n)``; on CPython with a memoryview slice.

Each element (a key and its value) is one viper call (``_put``): on a
Cortex-M a status line formatted a byte at a time in Python cost about a
million instructions, a tenth of the firmware's whole budget per second.
The write position and the "first element" flag live in ``st`` for it.
"""

from array import array

import micropython
from micropython import const

from .compat import MICROPYTHON

# _put kinds
_NUMBER = const(0)
_NULL = const(1)
_TRUE = const(2)
_FALSE = const(3)
_STRING = const(4)   # the bytes s (m of them), quoted
_RAW = const(5)      # the bytes s as they are, no comma
_OPEN_LIST = const(6)
_OPEN_OBJ = const(7)
_KEY = const(8)      # the key alone (its value follows with fixed / raw)


@micropython.viper
def _put(buf: ptr8, st: ptr32, key, kind: int, v: int, decimals: int, s, m: int):
    """At st[0] (st[1]: no comma needed, st[2]: buffer size): a comma unless
    the first element, then ``key`` (bytes up to and including its ':';
    None: a list item or an object), then the value of ``kind`` (_RAW: the
    bytes alone, no comma, no key; _KEY: no value). An element
    that would not fit, 8 bytes spare, is dropped."""
    n = st[0]
    size = st[2] - 8
    if kind != 5:
        if st[1]:
            st[1] = 0
        elif n < size:
            buf[n] = 44  # ,
            n += 1
        if key:
            k = ptr8(key)
            i = 0
            while n < size:
                c = k[i]
                buf[n] = c
                n += 1
                i += 1
                if c == 58:  # :
                    break
    if kind == 0:
        if v < 0:
            if n < size:
                buf[n] = 45  # -
                n += 1
            v = 0 - v
        nd = 0  # digits: at least one before the point
        x = v
        while True:
            nd += 1
            x = x // 10
            if x == 0:
                break
        if nd < decimals + 1:
            nd = decimals + 1
        total = nd + (1 if decimals else 0)
        if n + total < size:
            pos = n + total - 1
            i = 0
            while i < nd:
                if decimals and i == decimals:
                    buf[pos] = 46  # .
                    pos -= 1
                buf[pos] = 48 + v % 10
                v = v // 10
                pos -= 1
                i += 1
            n += total
    elif kind == 1 or kind == 2 or kind == 3:
        w = ptr8(b"nulltruefalse")
        o = 0
        c = 4
        if kind == 2:
            o = 4
        elif kind == 3:
            o = 8
            c = 5
        if n + c < size:
            i = 0
            while i < c:
                buf[n + i] = w[o + i]
                i += 1
            n += c
    elif kind == 4 or kind == 5:
        if n + m + 2 < size:
            src = ptr8(s)
            if kind == 4:
                buf[n] = 34  # "
                n += 1
            i = 0
            while i < m:
                buf[n + i] = src[i]
                i += 1
            n += m
            if kind == 4:
                buf[n] = 34
                n += 1
    elif kind == 6:
        buf[n] = 91  # [
        n += 1
        st[1] = 1
    elif kind == 7:
        buf[n] = 123  # {
        n += 1
        st[1] = 1
    st[0] = n


class Writer:
    def __init__(self, stream, size=1536):
        self.stream = stream
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.size = size
        self.st = array("i", [0, 1, size])
        self.lines = 0

    @property
    def n(self):
        return self.st[0]

    # ---- JSON ----------------------------------------------------------
    def begin(self, type_key):
        """type_key: b'"type":"status"' style prefix."""
        self.buf[0] = 123  # {
        st = self.st
        st[0] = 1
        st[1] = 1
        _put(self.buf, st, None, _RAW, 0, 0, type_key, len(type_key))  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
        st[1] = 0

    def key(self, k):
        """k: b'"name":' (the value follows with fixed / raw)"""
        _put(self.buf, self.st, k, _KEY, 0, 0, None, 0)  # pyright: ignore[reportArgumentType]

    def raw(self, s):
        _put(self.buf, self.st, None, _RAW, 0, 0, s, len(s))  # pyright: ignore[reportArgumentType]

    def fixed(self, v, decimals):
        """v / 10**decimals with exactly ``decimals`` digits after the point (after key())."""
        st = self.st
        first = st[1]
        st[1] = 1  # no comma: the key is already there
        _put(self.buf, st, None, _NUMBER, v, decimals, None, 0)  # pyright: ignore[reportArgumentType]
        st[1] = first

    def kint(self, k, v):
        _put(self.buf, self.st, k, _NUMBER, v, 0, None, 0)  # pyright: ignore[reportArgumentType]

    def kfix(self, k, v, decimals):
        _put(self.buf, self.st, k, _NUMBER, v, decimals, None, 0)  # pyright: ignore[reportArgumentType]

    def kbool(self, k, v):
        _put(self.buf, self.st, k, _TRUE if v else _FALSE, 0, 0, None, 0)  # pyright: ignore[reportArgumentType]

    def kstr(self, k, s):
        """s: bytes already JSON-safe, quotes added here."""
        _put(self.buf, self.st, k, _STRING, 0, 0, s, len(s))  # pyright: ignore[reportArgumentType]

    def knull(self, k):
        _put(self.buf, self.st, k, _NULL, 0, 0, None, 0)  # pyright: ignore[reportArgumentType]

    def open_list(self, k):
        _put(self.buf, self.st, k, _OPEN_LIST, 0, 0, None, 0)  # pyright: ignore[reportArgumentType]

    def item_str(self, s):
        _put(self.buf, self.st, None, _STRING, 0, 0, s, len(s))  # pyright: ignore[reportArgumentType]

    def open_obj(self):
        _put(self.buf, self.st, None, _OPEN_OBJ, 0, 0, None, 0)  # pyright: ignore[reportArgumentType]

    def close_obj(self):
        self._close(125)

    def close_list(self):
        self._close(93)

    def _close(self, c):
        st = self.st
        n = st[0]
        self.buf[n] = c
        st[0] = n + 1
        st[1] = 0

    def end(self):
        buf = self.buf
        st = self.st
        n = st[0]
        buf[n] = 125  # }
        buf[n + 1] = 10  # \n
        n += 2
        st[0] = n
        s = self.stream
        if s is not None:
            if MICROPYTHON:
                s.write(buf, n)
            else:
                s.write(self.mv[:n])
        self.lines += 1

    def text(self):
        """The current line as str (tests, debugging; allocates)."""
        return bytes(self.buf[:self.n]).decode()
