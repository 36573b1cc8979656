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
one of its PIDs has answered, or after P2 (50 ms; P2*, 5 s, after a
"response pending" 0x7F xx 0x78, at most PENDING_MAX times a request, and
never for the fast poll, whose data is the next poll's).

Other ECUs on the port (a gateway, a transmission, a dongle) may claim
PIDs, answer them late, wrongly or never: each PID is taken from one ECU,
the engine ECU (0x7E8, or source address 0x10, else the one offering rpm)
where it offers the PID, else the first that does; only that ECU's reply
counts and is waited for. An ECU whose response pending never became an
answer is not waited for again. The fuel method is the first whose PIDs
an ECU offers and has not failed: when its data is missing or more than an
engine burns for FALLBACK_POLLS fast polls in a row while the speed comes
(CONFIRMED_FALLBACK_POLLS once its data has come), it is given up for the
next (``fuel_fallbacks`` in the trip line).

Distance (PID 0x0D) and fuel integrate between consecutive fast replies
(trapezoid, in the economy's exact remainders) only when both replies are
fresh and at most ``obdfuel.HOLD_US`` apart: nothing is integrated across a
silence, and the distance never waits for the fuel. The speed is a source
of the firmware's speed fusion (keifw/fusion.py): the client adds its
distance while the fusion trusts it. After ``LOST_AFTER`` requests in a row
without a valid reply from the ECUs asked the OBD data is ``lost`` (a
``signal`` event; ``missing`` names ``OBD-II``) until a valid reply restores
it; a PID the fast poll lacks is named in ``missing`` too (``OBD-II 0x5E``).
Nothing here allocates per frame.
"""

from array import array

from micropython import const

from . import economy as _econ
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
PENDING_MAX = const(2)     # response-pending replies a request honours (each restarts P2*)
FALLBACK_POLLS = const(3)  # fast polls without the fuel method's data before the next method ...
CONFIRMED_FALLBACK_POLLS = const(50)  # ... or, once its data has come, 5 s of them
FRAME_BITS = const(130)  # 8-byte frame with stuffing, roughly
ENGINE_SA = const(0x10)  # ISO 15765-4: the engine ECU's 29-bit source address (11-bit: 0x7E8)
# why an ECU is no longer waited for (Client.ignored)
IGNORED_PENDING = const(1)  # its response pending never became an answer
IGNORED_SILENT = const(2)   # it left FALLBACK_POLLS requests in a row unanswered
IGNORED = (b"", b"pending", b"silent")
# the fuel methods' PIDs (their value slots must all be there), best first
_METHOD_PIDS = (b"", b"\x5e", b"\x10\x44\x03\x11", b"\x0b\x0c\x0f\x03\x11")
_METHOD_KEY = (b"", b"\x5e", b"\x10", b"\x0b\x0c")  # what a method cannot do without

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
        # which ECU each value slot comes from (0xFF: none yet), and the ECUs' record
        self.src = bytearray(b"\xff" * _pid.N_V)
        self.engine = 0xFF
        self.got = 0                    # value slots the fast request got from their ECU
        self.ecu_resp = array("i", bytes(4 * N_ECU))
        self.ecu_missed = array("i", bytes(4 * N_ECU))
        self.ecu_pending = array("i", bytes(4 * N_ECU))
        self.missed_run = bytearray(N_ECU)
        self.ignored = bytearray(N_ECU)
        self.pend = 0                   # ECUs whose response pending this request honours
        self.n78 = 0
        self.failed = 0                 # fuel methods given up (bit per method)
        self.unanswered = 0             # fast polls in a row without the method's data
        self.confirmed = False          # the method's data has come
        self.fallbacks = bytearray(9)   # (method, pid, ECU slot) per method given up
        self.n_fallbacks = 0
        self.lacking = -1               # a value slot the last fast poll lacked (-1: none)
        self.fusion = None              # the firmware's speed fusion and this client's row (obdlines.attach)
        self.row = -1
        self.inputs = None

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
                if b[2] == 0x78:  # response pending: wait longer, a bounded number of times
                    self.ecu_pending[s] += 1
                    self.pend |= 1 << s
                    # (a fast poll's data is the next poll's: it waits for none)
                    if not self.req_fast and (not self.expect or self.expect >> s & 1) and not self.ignored[s] \
                            and self.n78 < PENDING_MAX:
                        self.n78 += 1
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
            self.ecu_resp[s] += 1
            if self.phase == _DISCOVER_01 and self.tx[2] == 0:
                self.ecus |= 1 << s
        self._answered(s, t, ok)

    def _answered(self, s, t, ok):
        self.answered |= 1 << s
        self.pend &= ~(1 << s)
        if ok and self.phase == _POLL:
            self.missed_run[s] = 0
            self.ignored[s] = 0  # answering again: waited for again
        if ok and (not self.expect or self.expect >> s & 1):
            self.silent = 0
            if self.lost:
                self.lost = False
                self.events |= 2
        if self.expect and (self.answered & self.expect) == self.expect:
            self._complete(t)

    def _parse_01(self, s, b, n, t):
        got = _pid.parse_01(self.v, self.sup, s, b, n, self.src)
        if got and self.req_fast:
            self.fast_got = True
            self.got |= got
            if got & (1 << _pid.V_SPEED):
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
        """Into s from j what a status line's ``missing`` names for the
        client: ``OBD-II`` while it is lost, else the PID the last fast poll
        lacked (``OBD-II 0x5E``); the next free index."""
        if self.lost:
            s[j] = b"OBD-II"
            j += 1
        elif self.lacking >= 0:
            s[j] = _pid.NAMES[self.lacking]
            j += 1
        return j

    def ecu_id(self, s):
        """ECU slot s's reply identifier."""
        return REPLY_29_BASE | self.sa[s] if self.ext else 0x7E8 + s

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
        """The ECU a polled PID is taken from, as a bit mask (0: none, or one no longer waited for)."""
        k = _pid.SLOT[pid]
        s = self.src[k] if k != 0xFF else 0xFF
        return 1 << s if s != 0xFF and not self.ignored[s] else 0

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
        missed = self.expect & ~self.answered
        if missed:
            for s in range(N_ECU):
                if missed >> s & 1:
                    self.ecu_missed[s] += 1
                    if self.pend >> s & 1:
                        self.ignored[s] = IGNORED_PENDING
                    elif self.missed_run[s] < 255:
                        self.missed_run[s] += 1
                        # (the engine ECU silent: the client is lost, not the ECU ignored)
                        if self.missed_run[s] >= FALLBACK_POLLS and not self.ignored[s] and s != self.engine:
                            self.ignored[s] = IGNORED_SILENT
        self.pend = 0
        if (self.answered & self.expect if self.expect else self.answered) == 0:
            self.timeouts += 1
            self.silent += 1
            if self.silent >= LOST_AFTER and not self.lost:
                self.lost = True
                self.integ.reset()
                self.events |= 1
        elif self.req_fast:
            self._fast_done()
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

    def _fast_done(self):
        """A fast request complete: the speed (and whether the engine runs)
        to the fusion, the method's data checked, the interval integrated."""
        got = self.got
        speed = self.v[_pid.V_SPEED] if got >> _pid.V_SPEED & 1 else -1
        rate = self.rate_mlph() if self.method != _f.METHOD_NONE else -1
        if rate > _econ.FUEL_CEILING_MLPH:
            rate = -1  # more than a kei engine burns: garbage, not fuel
        self.lacking = -1
        if speed < 0:
            self.lacking = _pid.V_SPEED
        if self.method != _f.METHOD_NONE and rate < 0:
            self.unanswered += 1
            if self.lacking < 0:
                self.lacking = _pid.SLOT[_METHOD_KEY[self.method][0]]
            if speed >= 0 and self.unanswered >= (CONFIRMED_FALLBACK_POLLS if self.confirmed else FALLBACK_POLLS):
                self._fall_back()
        else:
            self.unanswered = 0
            self.confirmed = self.method != _f.METHOD_NONE
        fusion = self.fusion
        inputs = self.inputs
        if speed >= 0 and fusion is not None and inputs is not None:
            fusion.push(self.row, speed * 100)
            rpm = self.v[_pid.V_RPM] if got >> _pid.V_RPM & 1 else -1
            inputs.ext_running(rpm > 0 or rate > 0)
        self.integ.add(self.t_fast, speed, rate if self.integ.can_fuel else -1)

    def _fall_back(self):
        """Give up the fuel method for the next one the ECUs offer."""
        m = self.method
        k = 3 * self.n_fallbacks
        if k < len(self.fallbacks):
            pid = _METHOD_KEY[m][0]
            self.fallbacks[k] = m
            self.fallbacks[k + 1] = pid
            self.fallbacks[k + 2] = self.src[_pid.SLOT[pid]]
            self.n_fallbacks += 1
        self.failed |= 1 << m
        self.unanswered = 0
        self.confirmed = False
        self.lacking = -1  # (the speed came: what lacked was this method's)
        self._choose()

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

    def _sources(self):
        """The engine ECU, and for each value slot the ECU it is taken from."""
        e = 0xFF
        for s in range(N_ECU):
            if self.ecus >> s & 1 and ((not self.ext and s == 0) or (self.ext and self.sa[s] == ENGINE_SA)):
                e = s
        if e == 0xFF:
            for s in range(N_ECU - 1, -1, -1):  # the lowest that offers rpm, else the lowest that answered
                if self.ecus >> s & 1 and (self._offers(s, 0x0C) or e == 0xFF or not self._offers(e, 0x0C)):
                    e = s
        self.engine = e
        for k in range(_pid.N_V):
            pid = _pid.PIDS[k]
            src = e if e != 0xFF and self._offers(e, pid) else 0xFF
            s = 0
            while src == 0xFF and s < N_ECU:
                if self._offers(s, pid):
                    src = s
                s += 1
            self.src[k] = src

    def _offers(self, s, pid):
        return self.sup[32 * s + ((pid - 1) >> 3)] & (0x80 >> ((pid - 1) & 7)) != 0

    def _choose(self):
        """The fuel method (the first whose key PIDs an ECU offers and that
        has not failed) and the fast / slow request lists."""
        if self.engine == 0xFF:
            self._sources()
        f = self.fast
        f[0] = 1
        n = 1
        sp = self.supports
        if sp(0x0D):
            f[n] = 0x0D
            n += 1
        self.method = _f.METHOD_NONE
        for m in (_f.METHOD_FUEL_RATE, _f.METHOD_MAF, _f.METHOD_SPEED_DENSITY):
            if not self.failed >> m & 1 and self.method == _f.METHOD_NONE:
                ok = True
                for pid in _METHOD_KEY[m]:
                    ok = ok and sp(pid)
                if ok:
                    self.method = m
        for pid in _METHOD_PIDS[self.method]:
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
        self.got = 0
        self.pend = 0
        self.n78 = 0
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
