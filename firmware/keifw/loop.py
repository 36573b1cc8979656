"""The firmware loop: frames in, figures, warnings and telemetry out.

Per frame: the viper scanner (keifw/scan.py) over a whole block of records,
allocation-free. Every 100 ms of firmware time (``tick``): timeouts, the
physical inputs and their plausibility (keifw/inputs.py), eco score,
warnings, events, optional transmit (keifw/transmit.py); every second the
km/L windows (keifw/figures.py); every ``status_interval_s`` a status line
(keifw/lines.py); every ``save_interval_s`` a trip save.

Modules that need frames the DBC does not describe (an OBD-II client) take
them with ``listen`` and get a call per tick with ``on_tick``.
"""

from array import array

from . import alerts as _alerts
from . import eco as _eco
from . import economy as _econ
from . import fusion as _fusion
from . import lines
from . import scan as _scan
from .compat import TICKS_MASK, tadd, tdiff
from .eco import Eco
from .figures import Windows
from .fusion import Fusion
from . import inputs as _inputs
from .inputs import Inputs
from .telemetry import Writer
from .transmit import Transmitter
from .validity import Validity, rec_time, sweep as _sweep
from .vehicle import Roles, REQUIRED, KIND_EV

import micropython
from micropython import const

TICK_US = const(100000)
# ticks run at most per clock advance; beyond, the clock resynchronises (a
# board's clock that jumped, a stream without virtual time)
_CATCH_UP_TICKS = const(600)

_C_T = const(2)  # the scanner's ctx words (asserted against keifw.scan below)
_C_NT = const(0)
_C_STARTED = const(1)
_C_STAMP = const(7)
_C_WHY = const(9)
_LAST_BEFORE_WRAP = const(0x3FFFFFFF - 100000)  # TICKS_MASK - TICK_US
_WRAP_AFTER_TICK = const(0x3FFFFFFF - 100000 + 1)
# the tick's offsets, as consts here (a module attribute costs a lookup each
# time on a board): economy's tick count, inputs' speed_ok
_TICKS = const(14)
_O_SPEED_OK = const(0)

# _count's answer: what else the tick runs
_F_ECO = const(1)      # an eco sample: a trusted speed, the pedal, and engine data on an engine car
_F_IDLING = const(2)   # stopped with the engine running
_F_SCORED = const(4)   # the sample counts towards the trip's score (not parked with the engine off)
_F_SIGNALS = const(8)  # lost / restored events to report
_S_CHANGES = const(234)  # the fusion's count of verdicts changed (a source line each): fusion.S_CHANGES


@micropython.viper
def _count(o: ptr32, p: ptr32, acc: ptr32, engine: int, events: int) -> int:
    """The tick's counters (economy accumulators TICKS, IDLE_TICKS,
    MOVING_TICKS, FALLBACK_TICKS, UNTRUSTED_TICKS), the scanner's words
    (P_SPEED_OK: the speed role's frames carry the distance, P_TRUSTED,
    P_STOPPED from the trusted speed when it is not theirs) and the distance
    of the tick just gone where its trusted speed is integrated at the tick
    (a trapezoid into DIST, and FALLBACK_DIST when not the first source),
    from this tick's readings (Inputs.o, fusion's); returns _F_* bits
    (events: how many lost / restored events the sweep found). The offsets
    are the consts above, asserted in Firmware.__init__."""
    acc[14] += 1
    speed_ok = o[0]
    v = o[1]
    integ = o[12]
    fallback = o[21]
    p[15] = 1 if speed_ok and integ == 0 else 0
    p[16] = speed_ok
    if not speed_ok:
        p[14] = 0
    elif integ:
        p[14] = 1 if v < 100 else 0
    tick = o[19]
    if tick:
        x = (o[20] + (v if speed_ok else o[20])) * p[17]
        div = p[2]
        k = 0
        while k >= 0:
            r = acc[k + 1] + x
            if r >= div:
                q = r // div
                acc[k] += q
                r -= q * div
            acc[k + 1] = r
            k = 20 if k == 0 and tick == 2 else -1  # FALLBACK_DIST
    o[19] = (2 if fallback else 1) if speed_ok and integ == 1 else 0
    o[20] = v
    if not speed_ok:
        acc[23] += 1
    elif fallback:
        acc[22] += 1
    stopped = p[14]
    running = o[9]
    f = 0
    if events:
        f = 8
    if speed_ok:
        if not stopped:
            acc[18] += 1
        elif running and engine:
            acc[15] += 1
            f |= 2
        if o[5] and (o[3] or not engine):
            f |= 1
            if running or not stopped:
                f |= 4
    return f


@micropython.viper
def _score(acc: ptr32, s: int):
    """An eco sample into the trip's score (ECO_SUM, ECO_N; halved before
    they could leave 31 bits)."""
    acc[16] += s
    acc[17] += 1
    if acc[17] >= 10000000:
        acc[16] //= 2
        acc[17] //= 2


# periods (array('i')): per _DUE_* bit k, ticks counted at 2k and the
# period at 2k + 1 (0: never)
_DUE_SECOND = const(1)
_DUE_STATUS = const(2)
_DUE_SAVE = const(4)


@micropython.viper
def _periods(pr: ptr32) -> int:
    """One tick on each period counter; the _DUE_* bits of those due."""
    due = 0
    k = 0
    while k < 3:
        every = pr[2 * k + 1]
        if every:
            c = pr[2 * k] + 1
            if c >= every:
                c = 0
                due |= 1 << k
            pr[2 * k] = c
        k += 1
    return due


class Firmware:
    # set on the instance by keifw.gps.attach when the config enables GPS (as
    # class attributes here: more instance attributes would cost the hot
    # path's own lookups a few percent on a board)
    gps = None  # the GNSS reader
    uart_rx = None  # takes the stream's UART records: (buf, j, n) -> the record after them
    closers = ()  # called at the end of a drive, before the trip line

    def __init__(self, cfg, gen, out=None, port=None, store=None, gpio=None):
        self.cfg = cfg
        self.gen = gen
        self.port = port
        self.store = store
        self.gpio = gpio
        self.values = gen.new_values()
        self.stage = gen.new_values()  # what a frame decodes into before it is judged
        self.roles = roles = Roles(gen)
        self.kind = roles.kind
        self.val = val = Validity(gen)
        self.econ = econ = _econ.Economy(gen, roles)
        self.inputs = Inputs(gen, roles)
        self.fusion = Fusion(gen, roles, self.inputs.engine)
        # the tick's arrays, one attribute away
        self.acc = econ.acc
        self.ep = econ.p
        self.o = self.inputs.o
        self.engine = 1 if self.inputs.engine else 0
        self.eco = Eco()
        self.alerts = _alerts.Alerts(cfg, roles.has("boost"), roles.kind == KIND_EV)
        self.windows = Windows()
        self.w = Writer(out)  # (the trip line, with its warning log, goes out in pieces: telemetry.FLUSH_AT)
        checks = [(roles.msg[r], roles.slot[r]) for r in ("speed", "wheel_fl", "wheel_fr", "wheel_rl", "wheel_rr")
                  if roles.has(r)]
        self.scanner = _scan.Scanner(gen, self.values, self.stage, val, econ,
                                     econ.handler_kinds(roles, gen.N_MESSAGES), checks)
        self.ctx = self.scanner.ctx
        self.tx = Transmitter(gen, port) if bool(cfg.get("transmit")) and port is not None else None
        self.block = bytearray(24 * 32)  # frames from a port, as stream records
        assert (_scan.C_NT, _scan.C_STARTED, _scan.C_T, _scan.C_STAMP, _scan.C_WHY) == (0, 1, 2, 7, 9)
        assert _LAST_BEFORE_WRAP == TICKS_MASK - TICK_US
        assert (_econ.P_DIST_DIV, _econ.P_STOPPED, _econ.P_SPEED_OK, _econ.P_TRUSTED, _econ.P_FALLBACK_MUL,
                _econ.H_IDLE_STOP) == (2, 14, 15, 16, 17, 4)  # the scanner's and _count's layout
        assert (_econ.TICKS, _econ.IDLE_TICKS, _econ.ECO_SUM, _econ.ECO_N, _econ.MOVING_TICKS, _econ.FALLBACK_DIST,
                _econ.FALLBACK_TICKS, _econ.UNTRUSTED_TICKS) == (14, 15, 16, 17, 18, 20, 22, 23)
        assert (_inputs.O_SPEED_OK, _inputs.O_V, _inputs.O_A, _inputs.O_ENG_OK, _inputs.O_RPM, _inputs.O_PEDAL_OK,
                _inputs.O_PEDAL, _inputs.O_BOOST, _inputs.O_TEMP, _inputs.O_RUNNING, _inputs.O_FAULTY,
                _inputs.O_LEADER, _inputs.O_LEAD_INTEG) == tuple(range(13))  # the tick's layout
        assert (_inputs.O_TICK_INT, _inputs.O_V_PREV, _inputs.O_FALLBACK) == (19, 20, 21)
        for role in roles.slot:
            if roles.slot[role] >= 0:
                val.watch(roles.msg[role])
        self.msg_names = [name.encode() for name in gen.MSG_NAMES]
        self.required = []  # (msg index, b"MSG.Signal")
        self.fuel_name = roles.name["fuel_rate"].encode()  # ... and an implausible fuel rate
        for role in REQUIRED + ("wheel_fl",):
            if roles.has(role):
                self.required.append((roles.msg[role], roles.name[role].encode()))
        self.tickers = []  # on_tick callbacks
        # what the tick reads, one attribute away
        self.vst = val.st
        self.nmsg = val.n
        self.flags = val.flags
        self.q = self.inputs.q
        self.src = self.fusion.src
        self.al_st = self.alerts.st
        self.al_log = self.alerts.log
        self.al_events = self.alerts.events
        self.chores = port is not None or gpio is not None or self.tx is not None  # see _chores
        self.obd = None  # the OBD-II client (keifw.obd.attach) when the config enables it
        self.uplink = None  # the MQTT uplink (keifw.uplink.attach) when the config names a broker
        self.listener_data = bytearray(8)
        self.ended = False  # the harness said the drive is over
        self.periods = array("i", (0, 10, 0, 10 * cfg.get("status_interval_s", 1),
                                   0, 10 * cfg.get("save_interval_s", 60) if store is not None else 0))
        self.frames = 0
        self.lost_frames = 0  # records a byte link lost (keifw/link.py counts them)
        self.bus_state = 0
        self.vehicle = cfg.get("vehicle", "").encode()
        self.profile = cfg.get("profile", "").encode()
        self.debug_bounds = False
        self.restored = False

    # counters the scanner keeps in ctx
    @property
    def t(self):
        return self.ctx[_C_T]

    @property
    def unknown(self):
        return self.ctx[_scan.C_UNKNOWN]

    @property
    def skipped(self):
        return self.ctx[_scan.C_SKIPPED]

    @property
    def clock_jumps(self):
        return self.ctx[_scan.C_JUMPS]

    @property
    def tx_frames(self):
        return self.tx.frames if self.tx is not None else 0

    def has_fuel(self):
        """The trip has a fuel source: the DBC's fuel rate, or an OBD-II
        client with a fuel method."""
        return self.roles.has("fuel_rate") or (self.obd is not None and self.obd.method != 0)

    def listen(self, keys, handler, ext_mask=0, ext_value=-1):
        """Frames of these ids go to ``handler(key, data, dlc, t)`` (see Scanner.listen)."""
        self.scanner.listen(keys, handler, ext_mask, ext_value)

    def on_tick(self, fn):
        """``fn(t_ds)`` at every 10 Hz tick, after the warnings."""
        self.tickers.append(fn)
        self.chores = True

    # ------------------------------------------------------------------
    # frames in
    # ------------------------------------------------------------------
    def frame(self, key, data, dlc, t):
        """One received frame from a port at firmware time t (us, 30-bit wrapping)."""
        block = self.block
        _scan.put(block, 0, key, data, dlc, 0)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
        self.at(block, 1, t)

    def at(self, buf, n, t):
        """n frame records in buf (a port's block), all at firmware time t:
        no ticks run (the caller's clock runs them)."""
        ctx = self.ctx
        ctx[_C_T] = t
        ctx[_scan.C_VIRTUAL] = 0
        j = 0
        while True:
            j = self.scanner.scan(buf, j, n)
            if j >= n:
                return
            if ctx[_C_WHY] == _scan.WHY_LISTENER:
                self._listener(buf, j)
            j += 1  # a control record from a port is nothing

    def records(self, buf, n, virtual):
        """Process n stream records held in buf."""
        # The count a status line reports is the records before it, however
        # the stream happened to be cut into blocks: runs stay bit-identical.
        counted = self.frames
        ctx = self.ctx
        ctx[_scan.C_VIRTUAL] = 1 if virtual else 0
        sc = self.scanner
        tab = sc.tab
        st = sc.st
        stage = sc.stage
        values = sc.values
        ck = sc.ck
        p = sc.p
        acc = sc.acc
        dec = sc.dec
        rate = sc.rate
        scan = _scan._scan
        j = 0
        while True:
            j = scan(buf, st, j, n, ctx, tab, buf, stage, p, acc, dec, rate, values, ck)  # pyright: ignore[reportArgumentType]
            if j >= n:
                break
            why = ctx[_C_WHY]
            if why == _scan.WHY_TICK:
                # a 10 Hz tick is due at record j (or the clock starts): run
                # it, then the frame
                self.frames = counted + j
                self.clock(ctx[_C_T])
                continue
            if why == _scan.WHY_LISTENER:
                self._listener(buf, j)
            elif buf[j * 24 + 8] == 2:  # record.CONTROL_END_OF_DRIVE
                self.ended = True
                self.frames = counted + j
                return
            elif buf[j * 24 + 8] == 3 and virtual:  # record.CONTROL_SYNC
                self.frames = counted + j
                self._sync(buf, j)
            elif buf[j * 24 + 8] == 4:  # record.CONTROL_ACK
                self.frames = counted + j
                lines.ack(self)
            elif buf[j * 24 + 8] == 5 and self.uart_rx is not None:  # record.CONTROL_UART: GNSS bytes
                k = self.uart_rx(buf, j, n)
                counted -= k - j  # UART records are not frames
                j = k - 1
            j += 1
        self.frames = counted + n

    def _sync(self, buf, j):
        """A lockstep barrier: firmware time follows the SYNC's timestamp as
        the scanner follows a frame's (the same step bound), the due ticks
        run, then the record goes back through the port after what they sent."""
        ctx = self.ctx
        s = rec_time(buf, j * 24)
        t = s
        if ctx[_scan.C_STARTED]:
            d = tdiff(s, ctx[_scan.C_STAMP])
            t = tadd(ctx[_C_T], d) if 0 <= d <= _scan.MAX_STEP_US else ctx[_C_T]
        ctx[_scan.C_STAMP] = s
        self.clock(t)
        if self.port is not None:
            self.port.echo(buf, j)

    def _listener(self, buf, j):
        o = j * 24
        key = buf[o + 8] | (buf[o + 9] << 8) | (buf[o + 10] << 16) | ((buf[o + 11] & 0x1F) << 24)
        if buf[o + 12] & 1:
            key |= 0x20000000
        data = self.listener_data  # a copy: a memoryview slice per frame would allocate
        for k in range(8):
            data[k] = buf[o + 16 + k]
        handler = self.scanner.listener
        if handler is not None:  # _scan hands back listener frames only once one is set
            handler(key, data, buf[o + 13], self.ctx[_C_T])

    def clock(self, t):
        """Advance firmware time to t, running the 10 Hz ticks that fall due."""
        ctx = self.ctx
        ctx[_C_T] = t
        if not ctx[_C_STARTED]:
            ctx[_C_STARTED] = 1
            ctx[_C_STAMP] = t
            ctx[_C_NT] = tadd(t, TICK_US)
            return
        nt = ctx[_C_NT]
        # tdiff(t, nt) >= 0, inline: t - nt of two 30-bit clock values stays
        # a small int on 32 bits (t - nt + 2**29 would not)
        d = t - nt
        k = 0
        while (d >= 0 and d < 0x20000000) or d < -0x20000000:
            self.tick(nt)
            # tadd(nt, TICK_US), inline (a call per tick costs a board more
            # than the sum): nt + TICK_US past the 30-bit period would box
            nt = nt - _WRAP_AFTER_TICK if nt > _LAST_BEFORE_WRAP else nt + TICK_US
            k += 1
            if k >= _CATCH_UP_TICKS:  # over a minute behind: resynchronise
                nt = tadd(t, TICK_US)
                break
            d = t - nt
        ctx[_C_NT] = nt

    # ------------------------------------------------------------------
    # 10 Hz
    # ------------------------------------------------------------------
    # The tick in small methods: MicroPython takes the call state of a Python
    # function with more than 11 words of locals and stack from the heap on
    # every call (py/objfun.c, VM_MAX_STATE_ON_STACK) and frees it on
    # return, a cost that also varies with the heap's layout. Each method
    # below stays within 11 words (tests/test_fw_call_states.py).
    def tick(self, t):
        f = self._measure(t)
        if f & _F_ECO:
            self._eco_sample(f)
        t_ds = self.acc[_TICKS]
        if _alerts.tick(self.al_st, self.al_log, self.al_events, t_ds, self.o):  # pyright: ignore[reportArgumentType]
            self._warnings(t_ds)
        if f & _F_SIGNALS:
            self._signals(t_ds)
        if self.src[_S_CHANGES] != self.fusion.changes:
            lines.sources(self, t_ds)
        if self.chores:
            self._chores(t_ds)
        f = _periods(self.periods)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
        if f:  # (one variable for both: a twelfth word of state would put the call state on the heap)
            self._periodic(f)

    def _measure(self, t):
        """Timeouts and VALID flags, this tick's readings, the tick's counters: _count's bits."""
        n = _sweep(self.vst, self.nmsg, t, self.flags)  # pyright: ignore[reportArgumentType]
        _inputs.read(self.values, self.flags, self.q, self.o)  # pyright: ignore[reportArgumentType]
        _fusion.judge(self.src, self.values, self.flags, self.o)  # pyright: ignore[reportArgumentType]
        return _count(self.o, self.ep, self.acc, self.engine, n)  # pyright: ignore[reportArgumentType]

    def _eco_sample(self, f):
        s = _eco.step(self.eco, self.o, f & _F_IDLING)  # pyright: ignore[reportArgumentType]
        if f & _F_SCORED:
            _score(self.acc, s)  # pyright: ignore[reportArgumentType]

    def _warnings(self, t_ds):
        ev = self.al_events
        for k in range(_alerts.N_KINDS):
            if ev[k]:
                lines.warning(self, k, ev[k], t_ds)

    def _signals(self, t_ds):
        """Lost / restored lines for the events the sweep found."""
        val = self.val
        for i in range(val.n):
            e = val.event(i)
            if e & 1:
                lines.signal(self, i, b"lost", t_ds)
            if e & 2:
                lines.signal(self, i, b"restored", t_ds)

    def _chores(self, t_ds):
        """What a board or a listener adds: on_tick callbacks, the bus state,
        the indicators, transmit."""
        for fn in self.tickers:
            fn(t_ds)
        if self.port is not None:
            self.poll_bus()
        if self.gpio is not None:
            self.gpio.show(self.alerts.highest_level())
        if self.tx is not None:
            self.tx.send_status(self)

    def _periodic(self, due):
        """Once a second the km/L windows; the status line; the trip save."""
        if due & _DUE_SECOND:
            m = self.inputs.m_fuel
            obd = self.obd
            ok = (m >= 0 and self.flags[m] and self.o[_O_SPEED_OK]) or (obd is not None and obd.integ.have_prev)
            self.windows.second(self.econ, ok)
        if due & _DUE_STATUS:
            lines.status(self)
        if due & _DUE_SAVE:
            self.save()
        if self.debug_bounds:
            self.check_bounds()

    # ------------------------------------------------------------------
    # lines, end of drive
    # ------------------------------------------------------------------
    def status(self):
        lines.status(self)

    def trip(self):
        lines.trip(self)

    def error(self, message):
        lines.error(self.w, message)

    def info(self, key, value):
        lines.info(self.w, key, value)

    def finish(self):
        """End of input / shutdown: close open warnings, summary, save."""
        self.alerts.close_all(self.econ.acc[_econ.TICKS])
        for fn in self.closers:
            fn()
        lines.trip(self)
        if self.store is not None:
            self.save()
        if self.uplink is not None:
            self.uplink.finish()

    # ------------------------------------------------------------------
    # bus, persistence
    # ------------------------------------------------------------------
    def poll_bus(self):
        port = self.port
        if port is None:
            return
        s = port.state()
        self.bus_state = s
        if s == 3:
            port.restart()  # the port rate-limits with its own back-off

    def save(self):
        store = self.store
        if store is None:
            return
        try:
            store.save(self.econ.acc, self.alerts, getattr(self.port, "drain", None))  # receive between chunks
        except OSError as e:
            self.error("trip save failed: %s" % (e,))

    def load(self):
        if self.store is None:
            return False
        ok = self.store.load(self.econ.acc, self.alerts)
        self.restored = ok
        return ok

    def check_bounds(self):
        for x in self.econ.acc:
            if x > 0x3FFFFFFF or x < -0x3FFFFFFF - 1:
                raise OverflowError("accumulator left the 31-bit range")
        st = self.val.st
        for i in range(self.val.n):
            x = st[i * 13]
            if x < 0 or x > 0x3FFFFFFF:
                raise OverflowError("clock left the 30-bit range")
