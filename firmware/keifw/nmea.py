"""NMEA 0183 reader for a GNSS module on a UART (u-blox NEO-6M / M8N...).

Bytes go in as the UART delivers them (``feed``: a plain buffer, or the
UART records of a stream, keifw/record.py CONTROL_UART); whole sentences
come out into ``Reader.fx``. RMC, GGA and VTG of any talker (GP, GN, GL,
GA, GB...) are read; other sentences are counted and ignored. Nothing is
allocated per byte or per sentence: the sentence is collected in a
preallocated line buffer and parsed by viper code into int arrays.

A sentence moves nothing unless all of this holds: it starts with ``$``,
ends with ``*hh`` and a line end, holds printable ASCII only and at most
``LINE_MAX`` bytes, its checksum matches, every field it is read for parses
and is in range, and its UTC time of day is not before that of a sentence
taken in the last 10 s (a stale one: a module's buffer replayed). A new ``$`` before the line end (a truncated
sentence), a stray byte or an overlong line drops what was collected.

Gates (a fix must pass all to move the position or the speed): the last
GGA, at most 2.5 s old, reports fix quality 1-5 (not 0 no fix, not 6
estimated), at least ``MIN_SATS`` satellites and HDOP at most
``MAX_HDOP_X100`` / 100; an RMC has status A and a mode other than N (no
fix) or E (estimated); a VTG a mode other than N or E. A module that sends
no GGA therefore never gives a fix: the gates need it (u-blox modules send
RMC, VTG and GGA by default).

Units: latitude and longitude 1e-7 degree (longitude up to 1.8e9: a machine
word in viper, but beyond a board's small ints, so Python code reads
positions through ``units``, in 1e-4 degree), speed 0.01 km/h, course 0.01
degree, HDOP 0.01, UTC time of day ms, date yyyymmdd.
"""

from array import array

import micropython
from micropython import const

LINE_MAX = const(96)  # NMEA 0183 says 82 with CR LF; some modules send longer proprietary lines
MIN_SATS = const(4)
MAX_HDOP_X100 = const(500)
GGA_MAX_AGE_US = const(2500000)  # the GGA whose gates an RMC / VTG fix uses

# st: the parser's state, then its counters
_P_X = const(0)         # the XOR of the sentence so far (0x100 set: past its '*')
_P_N = const(1)         # bytes collected (0: outside a sentence)
S_TAKEN = const(2)      # sentences read (RMC, GGA, VTG that parsed, fix or not)
S_BAD_CHECKSUM = const(3)
S_GARBLED = const(4)    # truncated, overlong, a stray byte, a field that does not parse or is out of range
S_OTHER = const(5)      # sentences of other types, ignored
S_STALE = const(6)      # UTC time of day before the last taken sentence's
S_NO_FIX = const(7)     # taken, but gated: no fix, estimated, too few satellites, HDOP too high, no fresh GGA
_S_LEN = const(8)

# fx: what the sentences said
F_LAT = const(0)        # 1e-7 degree
F_LON = const(1)
F_POS_T = const(2)      # firmware time of the position (us, 30-bit clock)
F_POS_N = const(3)      # positions taken (modulo 2**30)
F_SPEED = const(4)      # 0.01 km/h
F_COURSE = const(5)     # 0.01 degree, -1: unknown
F_SPEED_T = const(6)
F_SPEED_N = const(7)
F_QUALITY = const(8)    # the last GGA's fix quality (-1: none yet)
F_SATS = const(9)
F_HDOP = const(10)      # 0.01, -1: unknown
F_GGA_T = const(11)     # firmware time of the last GGA
F_GGA_OK = const(12)    # 1: the last GGA passed the gates
F_TIME = const(13)      # UTC time of day of the last taken sentence, ms (-1: none)
F_DATE = const(14)      # yyyymmdd of the last RMC fix (0: unknown)
F_X = const(15)         # ``units``: the position in 1e-4 degree (longitudes east of 170 E folded west)
F_Y = const(16)
F_TIME_T = const(17)    # firmware time F_TIME was taken at
_F_LEN = const(18)
STALE_WINDOW_US = const(10000000)  # a sentence is stale against one taken this recently only

_CONTROL_UART = const(5)  # record.CONTROL_UART: a control record carrying UART bytes
_RMC = const(1)
_GGA = const(2)
_VTG = const(3)
# what a numeric field holds
_R_TIME = const(1)
_R_LAT = const(2)
_R_LON = const(3)
_R_KNOTS = const(4)
_R_COURSE = const(5)
_R_KMH = const(6)
_R_DATE = const(7)


@micropython.viper
def _parse(lo, nn: int, sto, fxo, t: int):
    """One collected sentence (lo[0:nn], ``$`` to the checksum digits) into fx."""
    ln = ptr8(lo)
    st = ptr32(sto)
    fx = ptr32(fxo)
    if nn < 10 or ln[nn - 3] != 42:  # '*'
        st[S_GARBLED] += 1
        return
    ck = 0
    k = nn - 2
    while k < nn:
        c = ln[k]
        if c >= 48 and c <= 57:
            c -= 48
        elif c >= 65 and c <= 70:
            c -= 55
        elif c >= 97 and c <= 102:
            c -= 87
        else:
            st[S_GARBLED] += 1
            return
        ck = ck * 16 + c
        k += 1
    end = nn - 3
    if st[_P_X] != ck:  # the XOR of the bytes between $ and *, taken as they came
        st[S_BAD_CHECKSUM] += 1
        return
    kind = 0
    if ln[1] >= 65 and ln[1] <= 90 and ln[1] != 80 and ln[2] >= 65 and ln[2] <= 90 and ln[6] == 44:
        if ln[3] == 82 and ln[4] == 77 and ln[5] == 67:
            kind = _RMC
        elif ln[3] == 71 and ln[4] == 71 and ln[5] == 65:
            kind = _GGA
        elif ln[3] == 86 and ln[4] == 84 and ln[5] == 71:
            kind = _VTG
    if kind == 0:
        st[S_OTHER] += 1
        return
    # the fields: a number (digits, one '.', a leading '-') or one letter;
    # what each field of each kind holds goes into these (-1 / 0: absent)
    tm = -1
    status = 0
    lat = 0
    lat_ok = 0
    hemi_ns = 0
    lon = 0
    lon_ok = 0
    hemi_ew = 0
    knots = -1          # knots x 1000
    kmh = -1            # 0.01 km/h
    course = -1         # 0.01 degree
    date = 0
    mode = 0
    quality = -1
    sats = -1
    hdop = -1
    unit_n = 0
    unit_k = 0
    bad = 0
    f = 1
    i = 7
    last = 12  # the last field read: RMC's mode
    if kind == _GGA:
        last = 8  # HDOP
    elif kind == _VTG:
        last = 9  # mode
    while i <= end and not bad and f <= last:
        ip = 0
        fr = 0
        fd = 0
        dot = 0
        neg = 0
        digits = 0
        idig = 0  # digits before the point
        letter = 0
        nch = 0
        while i < end and ln[i] != 44:
            c = ln[i]
            if c >= 48 and c <= 57:
                if dot:
                    if fd < 6:
                        fr = fr * 10 + c - 48
                        fd += 1
                elif ip < 100000000:
                    ip = ip * 10 + c - 48
                    idig += 1
                else:
                    bad = 1
                digits += 1
            elif c == 46 and not dot:
                dot = 1
            elif c == 45 and nch == 0:
                neg = 1
            elif c >= 65 and c <= 90:
                letter = c
            else:
                bad = 1
            nch += 1
            i += 1
        while fd < 6:
            fr *= 10
            fd += 1
        num = 0  # 1: a plain non-negative number
        if digits > 0 and letter == 0 and not neg:
            num = 1
        one = 0  # the field's letter, when it is one letter alone
        if nch == 1 and letter:
            one = letter
        if nch and not num and not one and not (neg and digits and not letter):
            bad = 1  # neither a number nor a letter
        # --- fields by kind and position: a letter where it goes, a number's role ---
        role = 0
        if kind == _RMC:
            if f == 1:
                role = _R_TIME
            elif f == 2:
                status = one
            elif f == 3:
                role = _R_LAT
            elif f == 4:
                hemi_ns = one
            elif f == 5:
                role = _R_LON
            elif f == 6:
                hemi_ew = one
            elif f == 7:
                role = _R_KNOTS
            elif f == 8:
                role = _R_COURSE
            elif f == 9:
                role = _R_DATE
            elif f == 12:
                mode = one
        elif kind == _GGA:
            if f == 1:
                role = _R_TIME
            elif f == 2:
                role = _R_LAT
            elif f == 3:
                hemi_ns = one
            elif f == 4:
                role = _R_LON
            elif f == 5:
                hemi_ew = one
            elif f == 6 and num:
                quality = ip if ip < 10 else -1
            elif f == 7 and num:
                sats = ip if ip < 100 else -1
            elif f == 8 and num:
                hdop = ip * 100 + fr // 10000 if ip < 100 else 9999
        else:  # _VTG
            if f == 1:
                role = _R_COURSE
            elif f == 5:
                role = _R_KNOTS
            elif f == 6:
                unit_n = one
            elif f == 7:
                role = _R_KMH
            elif f == 8:
                unit_k = one
            elif f == 9:
                mode = one
        if num and role:
            # the form NMEA gives (hhmmss, ddmm, dddmm, ddmmyy): another (decimal degrees) is not guessed at
            if (role == _R_TIME and idig != 6) or (role == _R_LAT and idig != 4) or (role == _R_LON and idig != 5) or (
                    role == _R_DATE and idig != 6):
                bad = 1
            elif role == _R_TIME:  # hhmmss.sss
                hh = ip // 10000
                mi = (ip // 100) % 100
                ss = ip % 100
                if hh < 24 and mi < 60 and ss < 61:
                    tm = ((hh * 60 + mi) * 60 + ss) * 1000 + fr // 1000
                else:
                    bad = 1
            elif role == _R_LAT or role == _R_LON:  # ddmm.mmmm, dddmm.mmmm: 1e-7 degree, minutes to 6 decimals
                dg = ip // 100
                mi = ip % 100
                top = 90 if role == _R_LAT else 180
                if dg <= top and mi < 60:
                    v = dg * 10000000 + (mi * 1000000 + fr + 3) // 6
                    # at most 90 / 180 degrees (1.8e9 is no small int constant on a board: compared by parts)
                    ok = 1 if dg < top or (mi == 0 and fr < 10) else 0
                    if role == _R_LAT:
                        lat = v
                        lat_ok = ok
                    else:
                        lon = v
                        lon_ok = ok
                else:
                    bad = 1
            elif role == _R_KNOTS:
                if ip < 500:
                    knots = ip * 1000 + fr // 1000
                else:
                    bad = 1
            elif role == _R_COURSE:
                if ip <= 360:
                    course = ip * 100 + fr // 10000
                else:
                    bad = 1
            elif role == _R_KMH:
                if ip < 1000:
                    kmh = ip * 100 + fr // 10000
                else:
                    bad = 1
            else:  # _R_DATE: ddmmyy
                dd = ip // 10000
                mm = (ip // 100) % 100
                yy = ip % 100
                if dd >= 1 and dd <= 31 and mm >= 1 and mm <= 12:
                    date = (2000 + yy if yy < 80 else 1900 + yy) * 10000 + mm * 100 + dd
                else:
                    bad = 1
        i += 1
        f += 1
    if bad:
        st[S_GARBLED] += 1
        return
    if lat_ok:
        if hemi_ns == 83:  # 'S'
            lat = 0 - lat
        elif hemi_ns != 78:
            lat_ok = 0
    if lon_ok:
        if hemi_ew == 87:  # 'W'
            lon = 0 - lon
        elif hemi_ew != 69:
            lon_ok = 0
    # staleness: a time of day before the last taken one's, when that came
    # in the last STALE_WINDOW_US (after an outage any time is new), the
    # difference taken within +-12 h (past midnight the time of day starts again)
    last = fx[F_TIME]
    if (last >> 31) == 1:  # -1 loaded zero-extended (64-bit ports)
        last = -1
    if tm >= 0 and last >= 0 and ((t - fx[F_TIME_T]) & 0x3FFFFFFF) <= STALE_WINDOW_US:
        d = tm - last
        if d > 43200000:
            d -= 86400000
        elif d < -43200000:
            d += 86400000
        if d < 0:
            st[S_STALE] += 1
            return
    if tm < 0 and ((kind == _RMC and status == 65) or (kind == _GGA and quality > 0)):
        st[S_GARBLED] += 1  # a fix without its time
        return
    st[S_TAKEN] += 1
    if tm >= 0:
        fx[F_TIME] = tm
        fx[F_TIME_T] = t
    gga_fresh = 0
    if fx[F_GGA_OK] and ((t - fx[F_GGA_T]) & 0x3FFFFFFF) <= GGA_MAX_AGE_US:
        gga_fresh = 1
    pos = 0
    speed = 0
    if kind == _GGA:
        fx[F_QUALITY] = quality
        fx[F_SATS] = sats
        fx[F_HDOP] = hdop
        fx[F_GGA_T] = t
        ok = 0
        if quality >= 1 and quality <= 5 and sats >= MIN_SATS and hdop >= 0 and hdop <= MAX_HDOP_X100 and lat_ok and lon_ok:
            ok = 1
        fx[F_GGA_OK] = ok
        pos = ok
    elif kind == _RMC:
        if status == 65 and mode != 78 and mode != 69 and lat_ok and lon_ok and gga_fresh:
            pos = 1
            if knots >= 0:
                speed = 1
                kmh = (knots * 1852 + 5000) // 10000
            if date:
                fx[F_DATE] = date
    else:
        if gga_fresh and mode != 78 and mode != 69:
            if kmh >= 0 and unit_k == 75:
                speed = 1
            elif knots >= 0 and unit_n == 78:
                speed = 1
                kmh = (knots * 1852 + 5000) // 10000
    if pos:
        fx[F_LAT] = lat
        fx[F_LON] = lon
        fx[F_POS_T] = t
        fx[F_POS_N] = (fx[F_POS_N] + 1) & 0x3FFFFFFF
        # 1e-4 degree for Python and the boundaries (small ints on every port)
        y = lat // 1000 if lat >= 0 else 0 - ((0 - lat) // 1000)
        x = lon // 1000 if lon >= 0 else 0 - ((0 - lon) // 1000)
        if x > 1700000:  # east of 170 E: Alaska's side of the antimeridian
            x -= 3600000
        fx[F_X] = x
        fx[F_Y] = y
    if speed:
        fx[F_SPEED] = kmh
        fx[F_COURSE] = course
        fx[F_SPEED_T] = t
        fx[F_SPEED_N] = (fx[F_SPEED_N] + 1) & 0x3FFFFFFF
    if not pos and not speed and kind != _GGA or kind == _GGA and not pos:
        st[S_NO_FIX] += 1


@micropython.viper
def feed(lo, sto, fxo, src: ptr8, j: int, n: int, rec: int, t: int) -> int:
    """The bytes src[j:n] (rec 0), or the UART records j.. of a block of n
    stream records (rec 1: while they are UART records, their data bytes),
    into the reader at firmware time t. Returns where it stopped (n, or the
    first record that is not a UART one). The checksum's XOR is taken as the
    bytes come (st[_P_X], up to the ``*``), so a sentence is read once."""
    ln = ptr8(lo)
    st = ptr32(sto)
    nn = st[_P_N]
    x = st[_P_X]
    k = j
    e = n
    while True:
        if rec:
            if j >= n:
                break
            o = j * 24
            if src[o + 12] != 0x80 or src[o + 8] != _CONTROL_UART:
                break
            k = o + 16
            e = k + src[o + 13]
            j += 1
        elif k >= e:
            break
        while k < e:
            c = src[k]
            k += 1
            if nn and c > 36 and c < 127 and nn < LINE_MAX:  # the bytes of a sentence, most of them
                ln[nn] = c
                nn += 1
                if c == 42:  # '*': the checksummed part ends; its XOR stays as it is
                    x |= 0x100
                elif x < 0x100:
                    x ^= c
            elif c == 36:  # '$'
                if nn:
                    st[S_GARBLED] += 1  # the previous one was cut short
                ln[0] = c
                nn = 1
                x = 0
            elif nn:
                if c == 13 or c == 10:
                    st[_P_X] = x & 0xFF
                    _parse(lo, nn, sto, fxo, t)
                elif c >= 32 and c < 127 and nn < LINE_MAX:  # a space, a quote, a '#': bytes of a sentence too
                    ln[nn] = c
                    nn += 1
                    if x < 0x100:
                        x ^= c
                    continue
                else:
                    st[S_GARBLED] += 1  # a byte no sentence holds, or too long
                nn = 0
    st[_P_N] = nn
    st[_P_X] = x
    return j if rec else n


class Reader:
    """The parser's state (``st``: counters at the S_* offsets), what the
    sentences said (``fx``, the F_* offsets) and the line buffer."""

    def __init__(self):
        self.line = bytearray(LINE_MAX)
        self.st = array("i", bytes(4 * _S_LEN))
        fx = array("i", bytes(4 * _F_LEN))
        fx[F_COURSE] = -1
        fx[F_QUALITY] = -1
        fx[F_SATS] = -1
        fx[F_HDOP] = -1
        fx[F_TIME] = -1
        self.fx = fx

    def feed(self, buf, start, end, t):
        """Plain bytes buf[start:end] (a UART's read) at firmware time t."""
        feed(self.line, self.st, self.fx, buf, start, end, 0, t)  # pyright: ignore[reportArgumentType]

    def records(self, buf, j, n, t):
        """The UART records of a stream block from record j; the first record after them."""
        return feed(self.line, self.st, self.fx, buf, j, n, 1, t)  # pyright: ignore[reportArgumentType]
