"""JSON-lines telemetry formatted into one preallocated bytearray.

A line is a template: its bytes as they go out, with a marker (``%1``,
``%s``...) where each value goes, compiled once at import by
``template()`` into runs of literal bytes, each followed by a slot byte.
Numbers come from the Writer's ``vals`` (integers, fixed point with the
slot's number of decimals), strings from its ``objs`` (bytes built once at
start-up), both preallocated and filled in slot order; one viper call
(``_emit``) formats a whole line, so a status line allocates nothing. The
line goes out with the stream extension ``write(buf, n)``; on CPython with a
memoryview slice.

Why whole lines: on a Cortex-M each Python call costs about 440
instructions; a status line put together a key at a time (a method and a
viper call per element, ~2,600 instructions each) cost ~160,000 on qemu,
from its template ~65,000 of which the formatting is under half. Viper's
code moves every value through memory: a byte copied costs ~20 instructions
even four to a loop pass, a digit ~60 (its division is a runtime call).

The per-element methods (begin, key, raw, kfix, kstr, end) go through the
same call, one key and value at a time, for lines written in pieces
(keifw/obdlines.py) and the rare ones (error, info).

A line put together from pieces goes out in more than one write once it
passes FLUSH_AT bytes (the trip line with its warning log): the stream gets
the same bytes, the buffer holds one piece rather than the longest line.
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
_END = const(0)
_MARKERS = (b"%0", b"%1", b"%2", b"%3", b"%4", b"%5", b"%6", b"%b", b"%s", b"%r", b"%l", b"%p")  # FIX + k
_COMPILED = const(-1)  # _emit's tail for a template from template()

# values with a meaning of their own (no figure comes near them): NULL is
# written null; ABSENT leaves its whole element out, key and comma (fields
# that do not apply to the vehicle or the port)
NULL = const(-0x3FFFFFFF)
ABSENT = const(-0x3FFFFFFE)

N_VALS = const(48)
N_OBJS = const(48)
# A line past this many bytes goes out in pieces before its next element is
# added (the trip line, with its warning log and quality object): the
# buffer holds one piece, not the longest line.
FLUSH_AT = const(768)


def template(text):
    """``text`` with markers for its values compiled for _emit: %0..%6 a
    number with so many decimals, %b a bool, %s a string, %r raw bytes, %l a
    list of strings, %p three digits. The result is runs of literal bytes,
    each as its length (one byte), the bytes and the slot byte after it
    (_END after the last). Start-up only (allocates)."""
    out = bytearray()
    runs = text.split(b"%")
    for j in range(len(runs)):
        run = runs[j]
        if j:
            out.append(FIX + _MARKERS.index(b"%" + run[:1]))
            run = run[1:]
        if len(run) > 255:
            raise ValueError("template run over 255 bytes")
        out.append(len(run))
        out.extend(run)
    out.append(_END)
    return bytes(out)


@micropython.viper
def _emit(buf: ptr8, st: ptr32, tpl, tail: int, valso, objs):
    """Append at st[0] (st[1]: the buffer's size) the template ``tpl``
    (tail _COMPILED), or the bytes ``tpl`` then one slot of kind ``tail``
    (0: none); the values from the start of ``valso`` (array('i')) and of
    ``objs`` (a list of bytes). A comma goes first when what comes starts a
    key, a string or an object right after a value. What would not fit, 8
    bytes spare, is dropped (a run of the template, a value, a string)."""
    vals = ptr32(valso)
    t = ptr8(tpl)
    n = st[0]
    size = st[1] - 8
    compiled = tail == _COMPILED
    o = 0  # read position in tpl
    m = 0  # this run's length
    if compiled:
        m = t[0]
        o = 1
    else:
        m = int(len(tpl))
    first = tail
    if m:
        first = t[o]
    if n > 0 and (first == 34 or first == 123 or first == STR):  # " {
        c = buf[n - 1]
        if c != 123 and c != 91 and c != 44 and c != 58 and n < size:  # { [ , :
            buf[n] = 44
            n += 1
    jv = 0
    jo = 0
    while True:
        # a run of literal bytes (its comma, if any, starts it: an ABSENT
        # value goes back to the run's start), four at a time
        mark = n
        if n + m < size:
            e = o + m
            while o + 4 <= e:
                buf[n] = t[o]
                buf[n + 1] = t[o + 1]
                buf[n + 2] = t[o + 2]
                buf[n + 3] = t[o + 3]
                n += 4
                o += 4
            while o < e:
                buf[n] = t[o]
                n += 1
                o += 1
        else:
            o += m
        c = tail
        if compiled:
            c = t[o]
            o += 1
        if c == _END:
            break
        if c == STR or c == RAW:
            s = objs[jo]
            jo += 1
            k = int(len(s))
            if n + k + 2 < size:
                src = ptr8(s)
                if c == STR:
                    buf[n] = 34  # "
                    n += 1
                q = 0
                while q < k:
                    buf[n + q] = src[q]
                    q += 1
                n += k
                if c == STR:
                    buf[n] = 34
                    n += 1
        else:
            v = vals[jv]
            jv += 1
            if (v >> 31) == 1:  # zero-extended negative (64-bit port)
                v -= (v >> 31) << 16 << 16
            if c == LIST:
                if n < size:
                    buf[n] = 91  # [
                    n += 1
                j = 0
                while j < v:
                    s = objs[jo]
                    jo += 1
                    k = int(len(s))
                    if n + k + 3 < size:
                        src = ptr8(s)
                        if j:
                            buf[n] = 44
                            n += 1
                        buf[n] = 34
                        n += 1
                        q = 0
                        while q < k:
                            buf[n + q] = src[q]
                            q += 1
                        n += k
                        buf[n] = 34
                        n += 1
                    j += 1
                if n < size:
                    buf[n] = 93  # ]
                    n += 1
            elif v == ABSENT:
                n = mark
            elif v == NULL or c == BOOL:
                w = ptr8(b"nulltruefalse")
                q = 0  # null
                k = 4
                if v != NULL:
                    if v:
                        q = 4  # true
                    else:
                        q = 8  # false
                        k = 5
                if n + k < size:
                    j = 0
                    while j < k:
                        buf[n + j] = w[q + j]
                        j += 1
                    n += k
            else:
                # a number: at least ``width`` digits, the point ``dec`` from the right
                dec = c - FIX
                width = 1
                if c == PAD3:
                    dec = 0
                    width = 3
                if v < 0:
                    if n < size:
                        buf[n] = 45  # -
                        n += 1
                    v = 0 - v
                # its digits (a chain of tests costs less than a loop of
                # multiplications), then written from the right: the
                # decimals, the point, the whole part
                nd = 1
                if v >= 10:
                    nd = 2
                    if v >= 100:
                        nd = 3
                        if v >= 1000:
                            nd = 4
                            if v >= 10000:
                                nd = 5
                                x = 100000
                                while nd < 10 and v >= x:
                                    nd += 1
                                    x *= 10
                if nd <= dec:
                    nd = dec + 1
                if nd < width:
                    nd = width
                total = nd + (1 if dec else 0)
                if n + total < size:
                    pos = n + total - 1
                    j = 0
                    while j < dec:
                        x = v // 10
                        buf[pos] = 48 + v - x * 10
                        v = x
                        pos -= 1
                        j += 1
                    if dec:
                        buf[pos] = 46  # .
                        pos -= 1
                    while j < nd:
                        x = v // 10
                        buf[pos] = 48 + v - x * 10
                        v = x
                        pos -= 1
                        j += 1
                    n += total
        if not compiled:
            break
        m = t[o]
        o += 1
    st[0] = n


class Writer:
    def __init__(self, stream, size=2048):
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
        _emit(self.buf, self.st, tpl, _COMPILED, self.vals, self.objs)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
        self._send()

    def start(self, tpl):
        """The first piece (from ``{``) of a line put together from
        templates: part() the next ones, end() closes and sends it."""
        self.st[0] = 0
        _emit(self.buf, self.st, tpl, _COMPILED, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def part(self, tpl):
        """A template's piece of a line begun with start() or begin() (vals
        and objs from their start again)."""
        self._room()
        _emit(self.buf, self.st, tpl, _COMPILED, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def _room(self):
        """Past FLUSH_AT, what the line has so far goes out but its last
        byte, which stays first in the buffer: the next element's comma
        depends on it."""
        n = self.st[0]
        if n > FLUSH_AT:
            self._write(n - 1)
            self.buf[0] = self.buf[n - 1]
            self.st[0] = 1

    # ---- one element at a time -----------------------------------------
    def begin(self, type_key):
        """type_key: b'"type":"status"' style prefix."""
        self.buf[0] = 123  # {
        self.st[0] = 1
        _emit(self.buf, self.st, type_key, 0, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def key(self, k):
        """k: b'"name":' (its value follows with raw())"""
        self._room()
        _emit(self.buf, self.st, k, 0, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def raw(self, s):
        self._room()
        self.objs[0] = s
        _emit(self.buf, self.st, b"", RAW, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def kfix(self, k, v, decimals):
        """v / 10**decimals with exactly ``decimals`` digits after the point."""
        self.vals[0] = v
        _emit(self.buf, self.st, k, FIX + decimals, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

    def kstr(self, k, s):
        """s: bytes already JSON-safe, quotes added here."""
        self.objs[0] = s
        _emit(self.buf, self.st, k, STR, self.vals, self.objs)  # pyright: ignore[reportArgumentType]

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
        self._write(n)
        self.lines += 1

    def _write(self, n):
        s = self.stream
        if s is not None:
            if MICROPYTHON:
                s.write(self.buf, n)
            else:
                s.write(self.mv[:n])

    def text(self):
        """The current line as str, its piece not yet sent (tests,
        debugging; allocates)."""
        return bytes(self.buf[:self.n]).decode()
