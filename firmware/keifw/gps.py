"""GPS on the board: the GNSS module's NMEA (keifw/nmea.py), its speed as a
reading for the speed-source fusion, and the jurisdiction whose kei road
rule (keifw/kei_rules.py) the warnings use.

Where the bytes come from: a board's UART (``attach`` with ``uart``, read
at every 10 Hz tick), or the UART records of a stream (SIL, qemu), which
the loop hands to ``records`` as they come between the frames.

The jurisdiction, at most once a second when a new position passed the
gates (keifw/geo.py): staying is one point-in-polygon test of the current
region. A change needs the position in the new region by a margin (55 m
each way, ``geo.deep``) on fixes for ``DWELL_DS``, so a jitter or a
multipath jump across a border moves nothing. Outside every region (at sea,
over a border with Canada or Mexico, where the simplified coast cut off
land) the region stays. With no position for ``gps_hold_s`` the rule is
held, then the profile's. The rule in force: the region's row of the table
whose effective date is on or before the RMC date (the table's AS_OF when
the GPS gave none), else the profile; ``gps_rules`` false: the profile
always (the jurisdiction is still reported). Each change is a
``jurisdiction`` line.

The speed reading (``Gps.reading``, the R_* offsets): value 0.01 km/h,
valid (a gated fix at most 2 s old), its age, fix quality, satellites, HDOP,
course and a count of fixes; see docs/gps.md. While valid it is the ``GPS``
row of the speed-source fusion (keifw/fusion.py, the last group): pushed
every tick, stale the tick after it stops, integrated by the tick when it
leads. It votes in every judgement, so it breaks the tie of a car whose
vehicle speed and wheels disagree.
"""

from array import array

import micropython
from micropython import const

from . import geo, kei_rules
from . import nmea as _nmea
from .fusion import INTEG_TICK
from .telemetry import NULL, template

# the GPS speed reading
R_SPEED = const(0)      # 0.01 km/h
R_VALID = const(1)      # 1: from a fix that passed the gates, at most SPEED_MAX_AGE_US old
R_AGE_DS = const(2)     # 0.1 s since that fix (9999: none, or longer)
R_QUALITY = const(3)    # the last GGA's fix quality (-1: none)
R_SATS = const(4)
R_HDOP = const(5)       # 0.01 (-1: unknown)
R_COURSE = const(6)     # 0.01 degree (-1: unknown)
R_FIXES = const(7)      # speed fixes taken (modulo 2**30): a new one when it changes
R_LEN = const(8)
SPEED_MAX_AGE_US = const(2000000)
NAME = b"GPS"  # the speed source's name in status and trip lines

DWELL_DS = const(30)    # ticks a new region must hold (deep inside) before it counts
CHECK_DS = const(10)    # the jurisdiction is looked at once a second at most

# the tick's state (Gps.s)
_S_POS_N = const(0)     # the position count last looked at
_S_CHECKED = const(1)   # tick of the last look
_S_FIX_DS = const(2)    # tick of the last position (-1: none yet)
_S_HOLD_DS = const(3)   # gps_hold_s in ticks
_S_LOST = const(4)      # 1: the hold ran out (the profile's rule until a new region)
_S_LEN = const(5)

_A_LOCATE = const(1)
_A_LOST = const(2)

# keifw.nmea's fx offsets, as consts (a module attribute costs a lookup in viper)
_F_SPEED = const(4)
_F_COURSE = const(5)
_F_SPEED_T = const(6)
_F_SPEED_N = const(7)
_F_QUALITY = const(8)
_F_SATS = const(9)
_F_HDOP = const(10)
_F_POS_N = const(3)
_C_T = const(2)  # keifw.scan's ctx: firmware time

REASONS = (b"rule", b"no_rule", b"not_in_force", b"override", b"no_fix")
_RULE = const(0)
_NO_RULE = const(1)
_NOT_IN_FORCE = const(2)
_OVERRIDE = const(3)
_NO_FIX = const(4)

JURISDICTION = template(
    b'{"type":"jurisdiction","t_s":%1,"region":%r,"rule":%s,"limit_kmh":%2,"minimum_kmh":%2,"reason":%s,'
    b'"effective":%0}')
SUMMARY = template(
    b'{"type":"gps","sentences":%0,"bad_checksum":%0,"garbled":%0,"other":%0,"stale":%0,"no_fix":%0,'
    b'"positions":%0,"speed_fixes":%0,"jurisdiction_changes":%0,"region":%r}')


@micropython.viper
def _step(fxo, ro, so, ctxo, t_ds: int) -> int:
    """The tick: the speed reading from the last fixes; whether the
    jurisdiction is due a look (_A_LOCATE) or the hold ran out (_A_LOST)."""
    fx = ptr32(fxo)
    r = ptr32(ro)
    s = ptr32(so)
    t = ptr32(ctxo)[_C_T]
    n = fx[_F_SPEED_N]
    age = (t - fx[_F_SPEED_T]) & 0x3FFFFFFF
    r[0] = fx[_F_SPEED]
    valid = 0
    ds = 9999
    if n:
        if age <= SPEED_MAX_AGE_US:
            valid = 1
        if age < 999900000:
            ds = age // 100000
    r[1] = valid
    r[2] = ds
    r[3] = fx[_F_QUALITY]
    r[4] = fx[_F_SATS]
    r[5] = fx[_F_HDOP]
    r[6] = fx[_F_COURSE]
    r[7] = n
    p = fx[_F_POS_N]
    if p != s[_S_POS_N]:
        s[_S_FIX_DS] = t_ds
        checked = s[_S_CHECKED]
        if (checked >> 31) == 1:  # negative, loaded zero-extended (64-bit ports)
            checked -= (checked >> 31) << 16 << 16
        if t_ds - checked >= CHECK_DS:
            s[_S_POS_N] = p
            s[_S_CHECKED] = t_ds
            return _A_LOCATE
        return 0
    last = s[_S_FIX_DS]
    if (last >> 31) == 1:
        last -= (last >> 31) << 16 << 16
    if not s[_S_LOST] and last >= 0 and t_ds - last > s[_S_HOLD_DS]:
        s[_S_LOST] = 1
        return _A_LOST
    return 0


class Gps:
    def __init__(self, fw, cfg):
        self.fw = fw
        self.reader = _nmea.Reader()
        self.fx = self.reader.fx
        self.reading = array("i", bytes(4 * R_LEN))
        self.reading[R_AGE_DS] = 9999
        self.fusion = fw.fusion
        self.speed_row = fw.fusion.add(NAME, 1, INTEG_TICK)  # fresh the tick after a push: pushed while valid
        self.s = array("i", (0, -CHECK_DS, -1, 10 * cfg["gps_hold_s"], 0))
        self.ctx = fw.ctx
        al = fw.alerts
        self.profile = (al.limit, al.minimum, al.interstate)  # the user's rule: override, and with no rule
        self.override = not cfg["gps_rules"]
        self.region = -1
        self.candidate = -1
        self.since = 0
        self.row = -1  # the kei_rules row in force (-1: the profile's rule)
        self.reason = _NO_FIX
        self.changes = 0
        self.names = [b'"' + geo.code(r) + b'"' for r in range(geo.N_REGIONS)]  # at start-up: lines allocate nothing

    # --- bytes in ----------------------------------------------------------
    def records(self, buf, j, n):
        """The loop's hook: UART records from j in a block of n; the first record after them."""
        return self.reader.records(buf, j, n, self.ctx[_C_T])

    def feed(self, buf, n):
        """A board's UART read: n bytes in buf."""
        self.reader.feed(buf, 0, n, self.ctx[_C_T])

    # --- the tick ----------------------------------------------------------
    def tick(self, t_ds):
        r = self.reading
        a = _step(self.fx, r, self.s, self.ctx, t_ds)  # pyright: ignore[reportArgumentType]
        if r[R_VALID]:
            self.fusion.push(self.speed_row, r[R_SPEED])
        if a:
            self._act(a, t_ds)

    def _act(self, a, t_ds):
        if a == _A_LOCATE:
            self._locate(t_ds)
        else:
            self._apply(-1, t_ds)  # the hold ran out: no jurisdiction, the profile's rule

    def _locate(self, t_ds):
        fx = self.fx
        x = fx[_nmea.F_X]
        y = fx[_nmea.F_Y]
        cur = self.region
        if cur >= 0 and geo.inside(cur, x, y):
            self.candidate = -1
            if self._row(cur) != self.row:  # a new day, a rule in force from today
                self._apply(cur, t_ds)
            return
        r = geo.find(x, y, cur)
        if r < 0 or not geo.deep(r, x, y):
            self.candidate = -1  # outside every region (the region stays), or too near a border
            return
        if r != self.candidate:
            self.candidate = r
            self.since = t_ds
        if t_ds - self.since >= DWELL_DS:
            self.candidate = -1
            self._apply(r, t_ds)

    def _row(self, region):
        """The table's row in force in region on the GPS date (AS_OF without one), -1 if none."""
        return _row(kei_rules.ROWS, kei_rules.N_ROWS, region,  # pyright: ignore[reportArgumentType]  (viper)
                    self.fx[_nmea.F_DATE] or kei_rules.AS_OF)

    def _apply(self, region, t_ds):
        """Region (-1: none) and the rule in force there onto the warnings; a line if anything changed."""
        self.s[_S_LOST] = 1 if region < 0 else 0
        row = self._row(region) if region >= 0 else -1
        if region < 0:
            reason = _NO_FIX
        elif row >= 0:
            reason = _OVERRIDE if self.override else _RULE
        else:
            reason = _NOT_IN_FORCE if self._has_rows(region) else _NO_RULE
        if region == self.region and row == self.row and reason == self.reason:
            return
        self.region = region
        self.row = row
        self.reason = reason
        al = self.fw.alerts
        if reason == _RULE:
            o = row * 20
            rows = kei_rules.ROWS
            al.set_limits(_word(rows, o + 12), _word(rows, o + 16), False)
        else:
            p = self.profile  # (a *args call would allocate)
            al.set_limits(p[0], p[1], p[2])
        self.changes += 1
        self._line(t_ds)

    def _has_rows(self, region):
        rows = kei_rules.ROWS
        for k in range(kei_rules.N_ROWS):
            if rows[k * 20] == region:
                return True
        return False

    def _line(self, t_ds):
        w = self.fw.w
        v = w.vals
        s = w.objs
        al = self.fw.alerts
        s[0] = self.names[self.region] if self.region >= 0 else b"null"
        s[1] = kei_rules.KINDS[kei_rules.ROWS[self.row * 20 + 8]] if self.reason == _RULE else b"profile"
        s[2] = REASONS[self.reason]
        v[0] = t_ds
        v[1] = al.limit_now()
        m = al.minimum_now()
        v[2] = m if m else NULL
        v[3] = _word(kei_rules.ROWS, self.row * 20 + 4) if self.row >= 0 else NULL
        w.line(JURISDICTION)

    def summary(self):
        """The end-of-drive line: what the reader took and refused."""
        w = self.fw.w
        v = w.vals
        st = self.reader.st
        fx = self.fx
        for k, i in enumerate((_nmea.S_TAKEN, _nmea.S_BAD_CHECKSUM, _nmea.S_GARBLED, _nmea.S_OTHER, _nmea.S_STALE,
                               _nmea.S_NO_FIX)):
            v[k] = st[i]
        v[6] = fx[_F_POS_N]
        v[7] = fx[_F_SPEED_N]
        v[8] = self.changes
        w.objs[0] = self.names[self.region] if self.region >= 0 else b"null"
        w.line(SUMMARY)


@micropython.viper
def _row(rows: ptr8, n: int, region: int, day: int) -> int:
    """The last row of region whose effective date is on or before day (rows
    are in date order per region), -1 if none."""
    best = -1
    k = 0
    while k < n:
        o = k * 20
        if rows[o] == region and (rows[o + 4] | (rows[o + 5] << 8) | (rows[o + 6] << 16) | (rows[o + 7] << 24)) <= day:
            best = k
        k += 1
    return best


def _word(b, o):
    """A little-endian int32 of a table (its rules' values are all small)."""
    return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)


def attach(fw, cfg, uart=None):
    """GPS into the firmware: the stream's UART records through the loop's
    hook, a board's ``uart`` (machine.UART) read at every tick."""
    g = Gps(fw, cfg)
    fw.uart_rx = g.records
    fw.on_tick(g.tick)
    fw.closers = fw.closers + (g.summary,)
    if uart is not None:
        buf = bytearray(256)
        readinto = uart.readinto

        def poll(t_ds):
            n = readinto(buf)
            if n:
                g.feed(buf, n)

        fw.on_tick(poll)
    fw.gps = g
    return g
