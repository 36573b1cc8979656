"""JSON-lines telemetry formatted into one preallocated bytearray.

A line is a template: its bytes as they go out, with a slot byte (below 32,
so never in a key) where each value goes; ``template()`` turns readable
markers (``%1``, ``%s``...) into slot bytes once, at import. Numbers come
from the Writer's ``vals`` (integers, fixed point with the slot's number of
decimals), strings from its ``objs`` (bytes built once at start-up), both
preallocated and filled in slot order; one viper call (``_emit``) formats a
whole line, so a status line allocates nothing. The line goes out with the
stream extension ``write(buf, n)``; on CPython with a memoryview slice.

Why whole lines: on a Cortex-M each Python call costs about 440
instructions, and a status line put together a key at a time (a method and
a viper call per element, ~2,600 instructions each) cost ~160,000 a second.

The per-element methods (begin, kstr, kfix, ..., end) go through the same
call, one key and value at a time, for lines written in pieces
(keifw/obdlines.py) and the rare ones (error, info).
"""

from array import array

import micropython
from micropython import const

from .compat import MICROPYTHON

# slot bytes: FIX + d (d = 0..6) the next value with d decimals; BOOL the
# next value, false if 0; STR the next object quoted (bytes, JSON-safe
# already); RAW the next object as it is; LIST the next value n, then n
# objects as a list of strings; PAD3 the next value as 3 digits (0..999)
FIX = const(1)
BOOL = const(8)
STR = const(9)
RAW = const(10)
LIST = const(11)
PAD3 = const(12)
_MARKERS = (b"%0", b"%1", b"%2", b"%3", b"%4", b"%5", b"%6", b"%b", b"%s", b"%r", b"%l", b"%p")

# values with a meaning of their own (no figure comes near them): NULL is
# written null; ABSENT leaves its whole element out, key and comma (fields
# that do not apply to the vehicle or the port)
NULL = const(-0x3FFFFFFF)
ABSENT = const(-0x3FFFFFFE)

N_VALS = const(48)
N_OBJS = const(48)


def template(text):
    """Slot bytes for the markers in ``text``: %0..%6 a number with so many
    decimals, %b a bool, %s a string, %r raw bytes, %l a list of strings,
    %p three digits. Start-up only (allocates)."""
    for k in range(len(_MARKERS)):
        text = text.replace(_MARKERS[k], bytes((FIX + k,)))
    return text


@micropython.viper
def _emit(buf: ptr8, st: ptr32, tpl, tail: int, valso, objs):
    """Append ``tpl`` at st[0] (st[1]: the buffer's size), then one slot of
    kind ``tail`` (0: none), the values from the start of ``valso``
    (array('i')) and ``objs`` (a list). A comma goes first when ``tpl`` starts
    a key, a string or an object right after a value. What would not fit,
    8 bytes spare, is dropped (an element's value, a string, a list item)."""
    vals = ptr32(valso)
    t = ptr8(tpl)
    nt = int(len(tpl))
    n = st[0]
    size = st[1] - 8
    jv = 0
    jo = 0
    first = tail
    if nt:
        first = t[0]
    if n > 0 and (first == 34 or first == 123 or first == STR):  # " {
        p = buf[n - 1]
        if p != 123 and p != 91 and p != 44 and p != 58 and n < size:  # { [ , :
            buf[n] = 44
            n += 1
    mark = n  # where the element being written began (its comma)
    i = 0
    while i <= nt:
        c = tail
        if i < nt:
            c = t[i]
        elif c == 0:
            break
        i += 1
        if c >= 32:
            if c == 44:
                mark = n
            if n < size:
                buf[n] = c
                n += 1
            continue
        if c == STR or c == RAW:
            o = objs[jo]
            jo += 1
            m = int(len(o))
            if n + m + 2 < size:
                src = ptr8(o)
                if c == STR:
                    buf[n] = 34  # "
                    n += 1
                k = 0
                while k < m:
                    buf[n + k] = src[k]
                    k += 1
                n += m
                if c == STR:
                    buf[n] = 34
                    n += 1
            continue
        v = vals[jv]
        jv += 1
        if (v >> 31) == 1:  # zero-extended negative (64-bit port)
            v -= (v >> 31) << 16 << 16
        if c == LIST:
            if n < size:
                buf[n] = 91  # [
                n += 1
            k = 0
            while k < v:
                o = objs[jo]
                jo += 1
                m = int(len(o))
                if n + m + 3 < size:
                    src = ptr8(o)
                    if k:
                        buf[n] = 44
                        n += 1
                    buf[n] = 34
                    n += 1
                    q = 0
                    while q < m:
                        buf[n + q] = src[q]
                        q += 1
                    n += m
                    buf[n] = 34
                    n += 1
                k += 1
            if n < size:
                buf[n] = 93  # ]
                n += 1
            continue
        if v == ABSENT:
            n = mark
            continue
        if v == NULL or c == BOOL:
            w = ptr8(b"nulltruefalse")
            o0 = 0  # null
            m = 4
            if v != NULL:
                if v:
                    o0 = 4  # true
                else:
                    o0 = 8  # false
                    m = 5
            if n + m < size:
                k = 0
                while k < m:
                    buf[n + k] = w[o0 + k]
                    k += 1
                n += m
            continue
        # a number: at least ``width`` digits, the point ``dec`` from the right
        dec = c - FIX
        width = dec + 1
        if c == PAD3:
            dec = 0
            width = 3
        if v < 0:
            if n < size:
                buf[n] = 45  # -
                n += 1
            v = 0 - v
        nd = 0
        x = v
        while True:
            nd += 1
            x = x // 10
            if x == 0:
                break
        if nd < width:
            nd = width
        total = nd + (1 if dec else 0)
        if n + total < size:
            pos = n + total - 1
            k = 0
            while k < nd:
                if dec and k == dec:
                    buf[pos] = 46  # .
                    pos -= 1
                x = v // 10
                buf[pos] = 48 + v - x * 10
                v = x
                pos -= 1
                k += 1
            n += total
    st[0] = n


class Writer:
    def __init__(self, stream, size=1536):
        self.stream = stream
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.st = array("i", [0, size])
        self.vals = array("i", bytes(4 * N_VALS))  # a line's numbers, in slot order
        self.objs = [b""] * N_OBJS  # ... and its strings
        self.lines = 0

    @property
    def n(self):
        return self.st[0]

    # ---- whole lines ---------------------------------------------------
    def line(self, tpl):
        """The line ``tpl`` (a template from ``{`` to ``}``) with the values
        and strings the caller put in vals and objs, sent."""
        self.st[0] = 0
        _emit(self.buf, self.st, tpl, 0, self.vals, self.objs)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
        self._send()

    def start(self, tpl):
        """The first piece (from ``{``) of a line put together from
        templates: part() the next ones, end() closes and sends it."""
        self.st[0] = 0
        _emit(self.buf, self.st, tpl, 0, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def part(self, tpl):
        """A template's piece of a line begun with start() or begin() (vals
        and objs from their start again)."""
        _emit(self.buf, self.st, tpl, 0, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    # ---- one element at a time -----------------------------------------
    def begin(self, type_key):
        """type_key: b'"type":"status"' style prefix."""
        self.buf[0] = 123  # {
        self.st[0] = 1
        _emit(self.buf, self.st, type_key, 0, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def key(self, k):
        """k: b'"name":' (the value follows with fixed / raw)"""
        _emit(self.buf, self.st, k, 0, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def raw(self, s):
        self.objs[0] = s
        _emit(self.buf, self.st, b"", RAW, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def fixed(self, v, decimals):
        """v / 10**decimals with exactly ``decimals`` digits after the point (after key())."""
        self.vals[0] = v
        _emit(self.buf, self.st, b"", FIX + decimals, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def kfix(self, k, v, decimals):
        self.vals[0] = v
        _emit(self.buf, self.st, k, FIX + decimals, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def kint(self, k, v):
        self.kfix(k, v, 0)

    def kbool(self, k, v):
        self.vals[0] = 1 if v else 0
        _emit(self.buf, self.st, k, BOOL, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def kstr(self, k, s):
        """s: bytes already JSON-safe, quotes added here."""
        self.objs[0] = s
        _emit(self.buf, self.st, k, STR, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def knull(self, k):
        self.kfix(k, NULL, 0)

    def end(self):
        n = self.st[0]
        self.buf[n] = 125  # }
        self.st[0] = n + 1
        self._send()

    def _send(self):
        buf = self.buf
        st = self.st
        n = st[0]
        buf[n] = 10  # \n
        n += 1
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
