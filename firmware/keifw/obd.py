"""OBD-II (ISO 15765-4) client: fuel and distance on a car that speaks no DBC
the firmware knows.

It transmits, so it runs only with ``obd: true`` in the config. Requests go
functionally: 11-bit 0x7DF with replies on 0x7E8-0x7EF; when nothing answers
that, 29-bit 0x18DB33F1 with replies on 0x18DAF1xx. Discovery asks the
supported-PID maps (Mode 01 0x00, 0x20, ... while the map says the next one
exists), the Mode 09 map, the VIN (09 02) and calibration IDs (09 04), then
chooses the fuel method (keifw/obdfuel.py) and polls:

* fast: one multi-PID request (speed plus what the fuel method needs) every
  ``FAST_US`` (10 Hz, each tick) of firmware time;
* slow: coolant, fuel level, odometer, one per ``SLOW_US``, sent as soon as
  a fast request completes;

each only while the client's own bus load stays within ``obd_bus_share_pct``
of the bit rate (a token bucket in bits, frames costed at 130 bits). One
request is outstanding at a time; it completes when every ECU that supports
one of its PIDs has answered, or after P2 (50 ms, 5 s after a "response
pending" 0x7F xx 0x78).

Distance and fuel integrate between consecutive fast replies (trapezoid, in
the economy's exact remainders) only when both replies are fresh and at most
``obdfuel.HOLD_US`` apart: nothing is integrated across a silence. After
``LOST_AFTER`` requests in a row without a valid reply the OBD data is
``lost`` (a ``signal`` event; ``missing`` names ``OBD-II``) until a valid
reply restores it. Nothing here allocates per frame.
"""

from array import array

from micropython import const

from . import isotp
from . import obdfuel as _f
from . import obdpid as _pid
from .compat import tdiff

FUNCTIONAL_11 = const(0x7DF)
FUNCTIONAL_29 = const(0x18DB33F1)
REPLY_29_BASE = const(0x18DAF100)
KEY_EXT = const(0x20000000)
N_ECU = const(8)

P2_US = const(50000)
P2_STAR_US = const(5000000)
FAST_US = const(100000)
SLOW_US = const(1000000)
LOST_AFTER = const(5)
FRAME_BITS = const(130)  # 8-byte frame with stuffing, roughly

# phases
_DISCOVER_01 = const(0)
_DISCOVER_09 = const(1)
_VIN = const(2)
_CALID = const(3)
_POLL = const(4)


class Client:
    def __init__(self, cfg, econ, port):
        self.port = port
        self.ve = cfg.get("obd_ve_pct", 80)
        self.vd = cfg.get("obd_displacement_cc", 658)
        # bits per 100 ms tick the client may put on the bus (replies count)
        self.budget = cfg.get("can_bitrate", 500000) * cfg.get("obd_bus_share_pct", 5) // 1000
        self.tokens = self.budget * 10
        self.rx = [isotp.Rx() for _ in range(N_ECU)]
        self.sa = bytearray(N_ECU)      # 29-bit: source address per slot
        self.n_sa = 0
        self.ext = False                # 29-bit addressing in use
        self.tx = bytearray(8)
        self.fc = bytearray(8)
        self.sup = bytearray(32 * N_ECU)  # Mode 01 maps per ECU slot
        self.sup09 = bytearray(4)
        self.ecus = 0                   # slots that answered 01 00
        self.vin = bytearray(17)
        self.vin_len = 0
        self.calid = bytearray(16)
        self.calid_len = 0
        self.phase = _DISCOVER_01
        self.map_pid = 0                # the supported-PID map being asked
        self.next_try = 0
        self.fast = bytearray(7)        # 01 + up to 6 PIDs
        self.fast_n = 0
        self.slow = bytearray(4)
        self.slow_n = 0
        self.slow_i = 0
        self.method = _f.METHOD_NONE
        self.v = array("i", [-1] * _pid.N_V)
        # request in flight
        self.pending = False
        self.expect = 0                 # bitmask of slots expected to answer
        self.answered = 0
        self.t_sent = 0
        self.wait_us = P2_US
        self.req_fast = False
        self.next_fast = 0
        self.next_slow = 0
        self.started = False
        # counters (the trip line's "obd")
        self.requests = 0
        self.responses = 0
        self.timeouts = 0
        self.negative = 0
        self.silent = 0                 # requests in a row without a valid reply
        self.lost = False
        self.events = 0                 # 1 lost, 2 restored (for the tick to report)
        self.integ = _f.Integrator(econ)
        self.t_fast = 0                 # time of the last reply to the fast request
        self.fast_got = False

    # ---- frames in ------------------------------------------------------
    def keys(self):
        """11-bit reply ids, and the 29-bit (mask, value) the loop hands us."""
        return range(0x7E8, 0x7F0), 0x1FFFFF00 | KEY_EXT, REPLY_29_BASE | KEY_EXT

    def _slot(self, key):
        if key & KEY_EXT:
            sa = key & 0xFF
            for i in range(self.n_sa):
                if self.sa[i] == sa:
                    return i
            if self.n_sa >= N_ECU:
                return -1
            self.sa[self.n_sa] = sa
            self.n_sa += 1
            return self.n_sa - 1
        return key - 0x7E8

    def frame(self, key, data, dlc, t):
        """A reply frame (listener of the firmware loop)."""
        s = self._slot(key)
        if s < 0:
            return
        rx = self.rx[s]
        r = rx.feed(data, dlc, t)
        if r == isotp.SEND_FC:
            self._fc(key, isotp.FC_CTS)
        elif r == isotp.OVERFLOW:
            self._fc(key, isotp.FC_OVERFLOW)
        elif r == isotp.DONE:
            self._message(s, rx.buf, rx.length, t)

    def _fc(self, key, fc):
        fcb = self.fc
        for k in range(8):
            fcb[k] = fc[k]
        if key & KEY_EXT:
            # 0x18DA F1 xx -> 0x18DA xx F1: to the ECU, from the tester
            self._send(0x18DA00F1 | ((key & 0xFF) << 8), True, fcb)
        else:
            self._send(key - 8, False, fcb)

    def _send(self, can_id, ext, buf):
        port = self.port
        if port is not None and port.send(can_id, ext, buf, 8):
            self.tokens -= FRAME_BITS
            return True
        return False

    def _message(self, s, b, n, t):
        if not self.pending or n < 2:
            return
        svc = b[0]
        if svc == 0x7F:
            if n >= 3 and b[1] == self.tx[1]:
                if b[2] == 0x78:  # response pending: wait longer
                    self.wait_us = P2_STAR_US
                    self.t_sent = t
                    return
                self.negative += 1
                self._answered(s, t, False)
            return
        if svc != self.tx[1] + 0x40:
            return  # not a reply to what we asked: garbage
        ok = self._parse_01(s, b, n, t) if svc == 0x41 else self._parse_09(b, n)
        if ok:
            self.responses += 1
            if self.phase == _DISCOVER_01 and self.tx[2] == 0:
                self.ecus |= 1 << s
        self._answered(s, t, ok)

    def _answered(self, s, t, ok):
        self.answered |= 1 << s
        if ok:
            self.silent = 0
            if self.lost:
                self.lost = False
                self.events |= 2
        if self.expect and (self.answered & self.expect) == self.expect:
            self._complete(t)

    def _parse_01(self, s, b, n, t):
        got = _pid.parse_01(self.v, self.sup, s, b, n)
        if got and self.req_fast:
            self.fast_got = True
            self.t_fast = t
        return got

    def _parse_09(self, b, n):
        pid = b[1]
        if pid == 0x00 and n >= 6:
            for k in range(4):
                self.sup09[k] = b[2 + k]
            return True
        if n < 3:
            return False
        if pid == 0x02:
            m = min(17, n - 3)
            for k in range(m):
                c = b[3 + k]
                self.vin[k] = c if 48 <= c <= 57 or 65 <= c <= 90 else 63  # JSON-safe: 0-9 A-Z, else ?
            self.vin_len = m
            return m == 17
        if pid == 0x04:
            m = min(16, n - 3)
            for k in range(m):
                c = b[3 + k]
                self.calid[k] = c if 32 < c < 127 and c != 34 and c != 92 else 63
            self.calid_len = m
            return True
        return False

    def missing_names(self, s, j):
        """Into s from j what a status line's missing names for the client
        (``OBD-II`` while it is lost); the next free index."""
        if self.lost:
            s[j] = b"OBD-II"
            j += 1
        return j

    # ---- what the ECUs support -----------------------------------------
    def supports(self, pid):
        """Some ECU that answered supports Mode 01 ``pid``."""
        if pid == 0:
            return self.ecus != 0
        o = (pid - 1) >> 3
        bit = 0x80 >> ((pid - 1) & 7)
        for s in range(N_ECU):
            if self.sup[32 * s + o] & bit:
                return True
        return False

    def _expected(self, pid):
        o = (pid - 1) >> 3
        bit = 0x80 >> ((pid - 1) & 7)
        m = 0
        for s in range(N_ECU):
            if self.sup[32 * s + o] & bit:
                m |= 1 << s
        return m

    # ---- 10 Hz ------------------------------------------------------------
    def tick(self, t):
        """Called every 100 ms with the firmware time (us, 30-bit)."""
        if not self.started:
            self.started = True
            self.next_fast = t
            self.next_slow = t
            self.next_try = t
        self.tokens += self.budget
        self.tokens = min(self.tokens, self.budget * 10)
        for rx in self.rx:
            rx.expired(t)
        if self.pending:
            busy = False
            for rx in self.rx:
                if rx.active:
                    busy = True
            if tdiff(t, self.t_sent) < self.wait_us or busy:
                return
            self._complete(t)
        self._next(t)

    def _complete(self, t):
        self.pending = False
        if self.answered == 0:
            self.timeouts += 1
            self.silent += 1
            if self.silent >= LOST_AFTER and not self.lost:
                self.lost = True
                self.integ.reset()
                self.events |= 1
        elif self.req_fast and self.fast_got:
            # without a fuel method the distance still counts (fuel adds 0;
            # fuel_method "none" says so)
            rate = self.rate_mlph() if self.integ.can_fuel and self.method != _f.METHOD_NONE else 0
            self.integ.add(self.t_fast, self.v[_pid.V_SPEED], rate)
        phase = self.phase
        if phase == _DISCOVER_01:
            self._after_map(t)
        elif phase == _DISCOVER_09:
            self.phase = _VIN if self.sup09[0] & 0x40 else _POLL
            if self.phase == _POLL:
                self._choose()
        elif phase == _VIN:
            self.phase = _CALID if self.sup09[0] & 0x10 else _POLL
            if self.phase == _POLL:
                self._choose()
        elif phase == _CALID:
            self.phase = _POLL
            self._choose()
        elif self.slow_n:
            self._next(t)  # a slow PID due goes between two fast requests

    def _after_map(self, t):
        pid = self.map_pid
        if pid == 0 and self.ecus == 0:
            # nobody on 11-bit: try 29-bit, then both in turn, once a second
            self.ext = not self.ext
            self.next_try = t + SLOW_US & 0x3FFFFFFF
            return
        nxt = pid + 0x20
        if nxt <= 0xE0 and self.supports(nxt):
            self.map_pid = nxt
        else:
            self.phase = _DISCOVER_09

    def _choose(self):
        """The fuel method and the fast / slow request lists."""
        f = self.fast
        f[0] = 1
        n = 1
        sp = self.supports
        if sp(0x0D):
            f[n] = 0x0D
            n += 1
        if sp(0x5E):
            self.method = _f.METHOD_FUEL_RATE
            want = (0x5E,)
        elif sp(0x10):
            self.method = _f.METHOD_MAF
            want = (0x10, 0x44, 0x03, 0x11)
        elif sp(0x0B) and sp(0x0C):
            self.method = _f.METHOD_SPEED_DENSITY
            want = (0x0B, 0x0C, 0x0F, 0x03, 0x11)
        else:
            want = ()
        for pid in want:
            if n < 7 and sp(pid):
                f[n] = pid
                n += 1
        self.fast_n = n
        m = 0
        for pid in (0x05, 0x2F, 0xA6):
            if sp(pid):
                self.slow[m] = pid
                m += 1
        self.slow_n = m

    def _next(self, t):
        if self.pending:
            return
        tx = self.tx
        phase = self.phase
        if phase == _DISCOVER_01:
            if tdiff(t, self.next_try) >= 0:
                self._request(1, self.map_pid, t, 3)
        elif phase == _DISCOVER_09:
            self._request(9, 0x00, t, 3)
        elif phase == _VIN:
            self._request(9, 0x02, t, 5)
        elif phase == _CALID:
            self._request(9, 0x04, t, 5)
        elif self.fast_n > 1 and tdiff(t, self.next_fast) >= 0:
            cost = FRAME_BITS * (2 + self.fast_n // 3)
            if self.tokens >= cost:
                self.next_fast = t + FAST_US & 0x3FFFFFFF
                v = self.v
                for k in range(self.fast_n):
                    pid = self.fast[k]
                    tx[1 + k] = pid
                    if k and _pid.SLOT[pid] != 0xFF:
                        v[_pid.SLOT[pid]] = -1  # only this request's replies count
                self._go(self.fast_n, t, True, cost)
        elif self.slow_n and tdiff(t, self.next_slow) >= 0 and self.tokens >= 3 * FRAME_BITS:
            self.next_slow = t + SLOW_US & 0x3FFFFFFF
            tx[1] = 1
            tx[2] = self.slow[self.slow_i]
            self.slow_i = (self.slow_i + 1) % self.slow_n
            self._go(2, t, False, 3 * FRAME_BITS)

    def _request(self, svc, pid, t, frames):
        self.tx[1] = svc
        self.tx[2] = pid
        self._go(2, t, False, frames * FRAME_BITS)

    def _go(self, n, t, fast, cost):
        tx = self.tx
        tx[0] = n
        for k in range(n + 1, 8):
            tx[k] = 0
        # every ECU that supports a PID of the request must answer (discovery:
        # wait out P2 for whoever is there)
        m = 0
        if tx[1] == 1 and self.phase == _POLL:
            for k in range(2, n + 1):
                m |= self._expected(tx[k])
        self.expect = m
        self.answered = 0
        self.req_fast = fast
        self.fast_got = False
        self.wait_us = P2_US
        self.t_sent = t
        self.pending = True
        self.requests += 1
        if self.ext:
            self._send(FUNCTIONAL_29, True, tx)
        else:
            self._send(FUNCTIONAL_11, False, tx)
        self.tokens -= cost - FRAME_BITS

    # ---- fuel and distance ------------------------------------------------
    def rate_mlph(self):
        """Fuel flow now (mL/h) by the chosen method, -1 without the data."""
        v = self.v
        method = self.method
        if method == _f.METHOD_FUEL_RATE:
            return _f.from_fuel_rate(v[_pid.V_FUEL_RATE]) if v[_pid.V_FUEL_RATE] >= 0 else -1
        if _f.fuel_cut(v[_pid.V_STATUS], v[_pid.V_LAMBDA], v[_pid.V_THROTTLE]):
            return 0
        if method == _f.METHOD_MAF:
            return _f.from_air(v[_pid.V_MAF] * 10, v[_pid.V_LAMBDA]) if v[_pid.V_MAF] >= 0 else -1
        if method == _f.METHOD_SPEED_DENSITY:
            if v[_pid.V_MAP] < 0 or v[_pid.V_RPM] < 0 or v[_pid.V_IAT] < 0:
                return -1
            air = _f.speed_density_air(v[_pid.V_MAP], v[_pid.V_IAT], v[_pid.V_RPM], self.ve, self.vd)
            return _f.from_air(air, -1)
        return -1
