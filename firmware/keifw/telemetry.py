"""JSON-lines telemetry formatted into one preallocated bytearray.

Numbers are written from integers (fixed point with a given number of
decimals), keys and names are bytes built once at start-up, so writing a
status line allocates nothing on MicroPython. The line goes out with the
stream extension ``write(buf, n)``; on CPython with a memoryview slice.
"""

from .compat import MICROPYTHON

_DIGITS = b"0123456789"


class Writer:
    def __init__(self, stream, size=1536):
        self.stream = stream
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.size = size
        self.n = 0
        self.first = True
        self.tmp = bytearray(24)
        self.lines = 0

    # ---- low level -----------------------------------------------------
    def raw(self, s):
        n = self.n
        m = len(s)
        if n + m > self.size - 4:
            return
        self.buf[n:n + m] = s
        self.n = n + m

    def _comma(self):
        if self.first:
            self.first = False
        else:
            self.buf[self.n] = 44  # ,
            self.n += 1

    def int_(self, v):
        buf = self.buf
        if v < 0:
            buf[self.n] = 45  # -
            self.n += 1
            v = -v
        tmp = self.tmp
        i = 0
        while True:
            tmp[i] = 48 + v % 10
            v //= 10
            i += 1
            if v == 0:
                break
        n = self.n
        while i > 0:
            i -= 1
            buf[n] = tmp[i]
            n += 1
        self.n = n

    def fixed(self, v, decimals):
        """v / 10**decimals with exactly ``decimals`` digits after the point."""
        if v < 0:
            self.buf[self.n] = 45
            self.n += 1
            v = -v
        p = 1
        for _ in range(decimals):
            p *= 10
        self.int_(v // p)
        if decimals:
            buf = self.buf
            buf[self.n] = 46  # .
            self.n += 1
            r = v % p
            while p > 1:
                p //= 10
                buf[self.n] = 48 + r // p
                self.n += 1
                r %= p

    # ---- JSON ----------------------------------------------------------
    def begin(self, type_key):
        """type_key: b'"type":"status"' style prefix."""
        self.buf[0] = 123  # {
        self.n = 1
        self.first = True
        self._comma()
        self.raw(type_key)

    def key(self, k):
        """k: b'"name":'"""
        self._comma()
        self.raw(k)

    def kint(self, k, v):
        self.key(k)
        self.int_(v)

    def kfix(self, k, v, decimals):
        self.key(k)
        self.fixed(v, decimals)

    def kbool(self, k, v):
        self.key(k)
        self.raw(b"true" if v else b"false")

    def kstr(self, k, s):
        """s: bytes already JSON-safe, quotes added here."""
        self.key(k)
        self.buf[self.n] = 34
        self.n += 1
        self.raw(s)
        self.buf[self.n] = 34
        self.n += 1

    def knull(self, k):
        self.key(k)
        self.raw(b"null")

    def open_list(self, k):
        self.key(k)
        self.buf[self.n] = 91  # [
        self.n += 1
        self.first = True

    def item_str(self, s):
        self._comma()
        self.buf[self.n] = 34
        self.n += 1
        self.raw(s)
        self.buf[self.n] = 34
        self.n += 1

    def open_obj(self):
        self._comma()
        self.buf[self.n] = 123
        self.n += 1
        self.first = True

    def close_obj(self):
        self.buf[self.n] = 125
        self.n += 1
        self.first = False

    def close_list(self):
        self.buf[self.n] = 93  # ]
        self.n += 1
        self.first = False

    def end(self):
        buf = self.buf
        buf[self.n] = 125  # }
        buf[self.n + 1] = 10  # \n
        self.n += 2
        s = self.stream
        if s is not None:
            if MICROPYTHON:
                s.write(buf, self.n)
            else:
                s.write(self.mv[:self.n])
        self.lines += 1

    def text(self):
        """The current line as str (tests, debugging; allocates)."""
        return bytes(self.buf[:self.n]).decode()
