"""The firmware loop: frames in, figures, warnings and telemetry out.

Per frame (the hot path, allocation-free, one viper function ``_scan`` over
a whole block of stream records): look up the message (a 2048-entry table
for 11-bit ids), check the DLC, check its CHECKSUM and decode it with the
generated ``decode_at`` (one call), check its COUNTER, update validity and
integrate the rate signals it carries. Python runs only when a 10 Hz tick
falls due or at a control record. Every 100 ms of firmware time (``tick``):
timeouts, speed plausibility, eco score, warnings, events, optional
transmit; every ``status_interval_s`` a status line.
"""

from array import array

from . import alerts as _alerts
from . import record
from . import economy as _econ
from .compat import tadd
from .eco import Eco, HINTS
from .fixed import ratio_digits, scale_of, ODO_PERIOD
from .telemetry import Writer
from .validity import Validity, rec_time
from .vehicle import Roles, REQUIRED, KIND_EV, KIND_HYBRID

import micropython
from micropython import const

TICK_US = const(100000)
_WINDOW_S = const(300)

BUS_NAMES = (b"active", b"warning", b"passive", b"bus_off", b"stopped")

T_STATUS = b'"type":"status"'
T_WARNING = b'"type":"warning"'
T_SIGNAL = b'"type":"signal"'
T_TRIP = b'"type":"trip"'
T_ERROR = b'"type":"error"'
T_INFO = b'"type":"info"'
STATES = (b"", b"raised", b"cleared", b"escalated")


def _conv(raw, abc):
    return (raw * abc[0] + abc[1]) // abc[2]


# ctx: the scanner's scalars (array('i'))
_C_NT = const(0)        # next 10 Hz tick, firmware time
_C_STARTED = const(1)
_C_T = const(2)         # firmware time of the current frame
_C_VIRTUAL = const(3)   # 1: time from the records' timestamps
_C_UNKNOWN = const(4)
_C_SKIPPED = const(5)
_C_NMSG = const(6)
_C_NEXT = const(7)      # keys outside the 11-bit table: how many
_C_EXT = const(8)       # ... then (key, index) pairs
# tab (bytearray): message index + 1 by 11-bit id (0: unknown), then per
# message its DLC, then its economy handler kind (economy.H_*)
_T_LEN = const(2048)


@micropython.viper
def _scan(bufo, j: int, n: int, ctx: ptr32, tab: ptr8, st: ptr32, valo, p: ptr32, acc: ptr32, dec) -> int:
    """Process stream records j..n-1 of bufo; returns the index of the first
    record left for Python (a control record, or a frame at which a 10 Hz
    tick falls due: Python runs the clock and calls again from there), n
    when all are done.

    Per frame: message lookup, DLC, CHECKSUM + decode (``dec``, the
    generated ``decode_at``), the validity bookkeeping on ``st`` (the
    validity.STRIDE layout) and the economy integration into ``acc`` with
    the parameters in ``p`` (economy.P_* layout), all in exact integers
    below 2**31 (the same figures on 32-bit boards). Words read back from
    int arrays are zero-extended on 64-bit ports: values that may be
    negative are range-checked or sign-fixed before use.
    """
    buf = ptr8(bufo)
    values = ptr32(valo)
    nm = ctx[_C_NMSG]
    virtual = ctx[_C_VIRTUAL]
    t = ctx[_C_T]
    nt = ctx[_C_NT]
    started = ctx[_C_STARTED]
    while j < n:
        o = j * 24
        fl = buf[o + 12]
        if fl & 0x86:
            if fl & 0x80:  # a control record: Python's
                return j
            ctx[_C_SKIPPED] += 1  # remote or error frame: nothing to decode
            j += 1
            continue
        if virtual:
            # the low 30 bits of the u64 timestamp; a tick due: Python's
            t = buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | ((buf[o + 3] & 0x3F) << 24)
            if not started or ((t - nt + 0x20000000) & 0x3FFFFFFF) >= 0x20000000:
                return j
        j += 1
        key = buf[o + 8] | (buf[o + 9] << 8) | (buf[o + 10] << 16) | ((buf[o + 11] & 0x1F) << 24)
        if fl & 1:
            key |= 0x20000000
        i = -1
        if key < 2048:
            i = tab[key] - 1
        else:
            k = 0
            ne = ctx[_C_NEXT]
            while k < ne:
                if ctx[_C_EXT + 2 * k] == key:
                    i = ctx[_C_EXT + 2 * k + 1]
                    break
                k += 1
        if i < 0:
            ctx[_C_UNKNOWN] += 1
            continue
        b = i * 13
        # bad: 1 before decoding (wrong DLC or CHECKSUM: not decoded, and the
        # next frame's COUNTER is the new reference), 2 a COUNTER that did
        # not advance by one
        bad = 0
        if buf[o + 13] != tab[_T_LEN + i] or int(dec(i, bufo, o + 16, valo)) < 0:
            bad = 1
        else:
            cs = st[b + 3]
            if cs >= 0 and cs < 0x10000:
                c = values[cs]
                prev = st[b + 2]
                st[b + 2] = c
                resync = st[b + 11]
                st[b + 11] = 0
                if st[b + 6] and not resync and c != ((prev + 1) & st[b + 4]):
                    bad = 2
        if bad:
            # validity.mark_bad's bookkeeping, inline: a viper call passing a
            # pointer boxes the address on a 32-bit board, an allocation per
            # bad frame
            if bad == 1:
                st[b + 11] = 1
            st[b + 10] += 1
            st[b + 9] = 0
            if st[b + 8] < 255:
                st[b + 8] += 1
            if st[b + 8] >= 5:
                if st[b + 7]:
                    st[b + 12] = 1
                st[b + 7] = 0
            continue
        st[b + 8] = 0
        if not st[b + 7]:
            st[b + 9] += 1
            if st[b + 9] >= 2:
                st[b + 7] = 1
        d = 0
        if st[b + 6]:
            d = ((t - st[b] + 0x20000000) & 0x3FFFFFFF) - 0x20000000
            if d < 0 or d > st[b + 5]:
                d = 0  # a gap over the timeout adds nothing
        else:
            st[b + 6] = 1
        st[b] = t
        if not st[b + 7]:
            continue
        # valid: time since the previous good frame in 100 us units, the
        # sub-100 us part carried per message
        d += st[b + 1]
        d100 = d // 100
        st[b + 1] = d - d100 * 100
        h = tab[_T_LEN + nm + i]
        if h == 0:
            continue
        # economy: acc pair k (and k2) += x, remainder below div
        k = -1
        k2 = -1
        x = 0
        div = 1
        if h == 1:  # speed: distance; stopped below 1 km/h
            raw = values[p[0]]
            if (raw >> 31) == 1:  # zero-extended negative (64-bit port)
                raw -= (raw >> 31) << 16 << 16
            p[14] = 1 if raw < p[3] else 0
            if d100 and p[15]:
                k = 0
                x = raw * p[1] * d100
                div = p[2]
        elif h == 2:  # fuel rate: fuel, and idle fuel while stopped
            if d100:
                k = 2
                x = values[p[4]]
                if (x >> 31) == 1:
                    x -= (x >> 31) << 16 << 16
                x = x * p[5] * d100
                div = p[6]
                if p[14] and p[15]:
                    k2 = 4
        elif h == 3:  # pack power, rounded to its quantum: energy out / in / regen
            if d100:
                v = values[p[7]]
                if (v >> 31) == 1:  # zero-extended negative (64-bit port)
                    v -= (v >> 31) << 16 << 16
                ci = values[p[8]]
                if (ci >> 31) == 1:
                    ci -= (ci >> 31) << 16 << 16
                # round(v * ci * p_mul / p_div) without a product beyond 2**31
                a = v * p[9]
                pd = p[10]
                q = a // pd
                pw = q * ci + ((a - q * pd) * ci + (pd >> 1)) // pd
                x = pw * d100
                div = p[11]
                if x >= 0:
                    k = 6
                else:
                    k = 8
                    x = -x
                    sr = p[12]
                    if sr >= 0 and sr < 0x10000 and values[sr]:
                        k2 = 10
        elif h == 4:  # hybrid idle-stop time
            if d100 and values[p[13]]:
                k = 12
                x = d100
                div = 10000  # economy's idle-stop divisor: 100 us units per second
        while k >= 0:
            r = acc[k + 1] + x
            if r >= div or r < 0:
                q = r // div
                acc[k] += q
                r -= q * div
            acc[k + 1] = r
            k = k2
            k2 = -1
    return j


@micropython.viper
def _put(rec: ptr8, key: int, data, dlc: int):
    """A frame from a port as a stream record (time unused: not virtual)."""
    rec[8] = key & 0xFF
    rec[9] = (key >> 8) & 0xFF
    rec[10] = (key >> 16) & 0xFF
    rec[11] = (key >> 24) & 0x1F
    rec[12] = 1 if key & 0x20000000 else 0
    rec[13] = dlc
    m = int(len(data))
    if m > 8:
        m = 8
    src = ptr8(data)
    k = 0
    while k < m:
        rec[16 + k] = src[k]
        k += 1
    while k < 8:
        rec[16 + k] = 0
        k += 1


class Firmware:
    def __init__(self, cfg, gen, out=None, port=None, store=None, gpio=None):
        self.cfg = cfg
        self.gen = gen
        self.port = port
        self.store = store
        self.gpio = gpio
        self.values = gen.new_values()
        self.roles = roles = Roles(gen)
        self.kind = roles.kind
        self.val = val = Validity(gen)
        self.econ = Economy = _econ.Economy(gen, roles)
        self.eco = Eco()
        self.alerts = _alerts.Alerts(cfg, roles.has("boost"), roles.kind == KIND_EV)
        self.w = Writer(out, 1536 + 96 * _alerts.MAX_LOG)  # room for the trip line's whole warning log
        self.transmit = bool(cfg.get("transmit")) and port is not None
        # the frame scanner's tables (see _scan)
        n = gen.N_MESSAGES
        tab = bytearray(_T_LEN + 2 * n)
        far = []
        for key in gen.MSG_KEY:
            i = gen.MSG_KEY[key]
            if key < 2048:
                tab[key] = i + 1
            else:
                far.append((key, i))
        for i in range(n):
            tab[_T_LEN + i] = gen.MSG_LEN[i]  # the DLC a frame must have
        kinds = Economy.handler_kinds(roles, n)
        for i in range(n):
            tab[_T_LEN + n + i] = kinds[i]
        self.tab = tab
        ctx = array("i", bytes(4 * (_C_EXT + 2 * len(far))))
        ctx[_C_NMSG] = n
        ctx[_C_NEXT] = len(far)
        for k in range(len(far)):
            ctx[_C_EXT + 2 * k] = far[k][0]
            ctx[_C_EXT + 2 * k + 1] = far[k][1]
        self.ctx = ctx
        self.decode_at = gen.decode_at
        self.rec = bytearray(record.SIZE)  # frame() from a port, as a record
        assert _econ.P_STOPPED == 14 and _econ.P_SPEED_OK == 15 and _econ.H_IDLE_STOP == 4  # _scan's layout
        for role in roles.slot:
            if roles.slot[role] >= 0:
                val.watch[roles.msg[role]] = 1
        self.msg_names = [name.encode() for name in gen.MSG_NAMES]
        self.required = []  # (msg index, b"MSG.Signal")
        for role in REQUIRED + ("wheel_fl",):
            if roles.has(role):
                self.required.append((roles.msg[role], roles.name[role].encode()))
        # conversions to internal units
        sl = roles.slot
        self.c_speed = scale_of(gen, sl["speed"], 100) if sl["speed"] >= 0 else (0, 0, 1)   # 0.01 km/h
        self.c_wheel = scale_of(gen, sl["wheel_fl"], 100) if sl["wheel_fl"] >= 0 else (0, 0, 1)
        self.c_rpm = scale_of(gen, sl["rpm"], 1) if sl["rpm"] >= 0 else (0, 0, 1)
        self.c_pedal = scale_of(gen, sl["pedal"], 10) if sl["pedal"] >= 0 else (0, 0, 1)  # 0.1 %
        self.c_boost = scale_of(gen, sl["boost"], 10) if sl["boost"] >= 0 else (0, 0, 1)  # 0.1 kPa
        ts = sl["coolant"] if sl["coolant"] >= 0 else sl["motor_temp"]
        self.s_temp = ts
        self.c_temp = scale_of(gen, ts, 10) if ts >= 0 else (0, 0, 1)  # 0.1 degC
        # slots read at 10 Hz (-1: absent)
        self.s_speed = sl["speed"]
        self.s_wheels = (sl["wheel_fl"], sl["wheel_fr"], sl["wheel_rl"], sl["wheel_rr"])
        self.s_rpm = sl["rpm"] if roles.kind != KIND_EV else -1
        self.s_pedal = sl["pedal"]
        self.s_boost = sl["boost"]
        self.s_running = sl["running"]
        self.engine = roles.kind != KIND_EV
        self.m_speed = roles.msg["speed"]
        self.m_wheels = roles.msg["wheel_fl"]
        self.m_eng = roles.msg["rpm"] if roles.kind != KIND_EV else roles.msg["motor_temp"]
        self.m_pedal = roles.msg["pedal"]
        self.m_fuel = roles.msg["fuel_rate"]
        self.m_temp = roles.msg["coolant"] if sl["coolant"] >= 0 else roles.msg["motor_temp"]
        self.m_pack = roles.msg["pack_v"]
        # speed plausibility
        self.implausible = False
        self.imp_cnt = 0
        self.ok_cnt = 0
        self.speed_ok = False
        self.v = 0
        self.vhist = array("i", bytes(4 * 10))
        self.vpos = 0
        # clock (next tick, started, t: in ctx)
        self.ended = False  # the harness said the drive is over
        self.ticks = 0
        self.status_every = 10 * cfg.get("status_interval_s", 1)
        self.save_every = 10 * cfg.get("save_interval_s", 60)
        self.status_cnt = 0
        self.save_cnt = 0
        # economy windows (per second snapshots of the wrapping odometers)
        self.w_dist = array("i", bytes(4 * (_WINDOW_S + 1)))
        self.w_fuel = array("i", bytes(4 * (_WINDOW_S + 1)))
        self.w_pos = 0
        self.w_n = 0
        self.sec_cnt = 0
        self.instant_x100 = -1
        self.rolling_x100 = -1
        # counters
        self.frames = 0
        self.bus_state = 0
        self.tx_frames = 0
        self.tx_dropped = 0
        self.tx_buf = bytearray(8)
        self.tx_page = 0
        gm = gen.MSG_INDEX_BY_NAME
        self.tx_eco = gm.get("KD_ECO_STATUS", -1)
        self.tx_warn = gm.get("KD_WARNING", -1)
        self.tx_trip = gm.get("KD_TRIP_SUMMARY", -1)
        self.vehicle = cfg.get("vehicle", "").encode()
        self.profile = cfg.get("profile", "").encode()
        self.debug_bounds = False
        self.restored = False

    # firmware time and frame counters live in ctx, for the scanner
    @property
    def t(self):
        return self.ctx[_C_T]

    @property
    def next_tick(self):
        return self.ctx[_C_NT]

    @property
    def started(self):
        return self.ctx[_C_STARTED] != 0

    @property
    def unknown(self):
        return self.ctx[_C_UNKNOWN]

    @property
    def skipped(self):
        return self.ctx[_C_SKIPPED]

    # ------------------------------------------------------------------
    # hot path
    # ------------------------------------------------------------------
    def frame(self, key, data, dlc, t):
        """One received frame from a port at firmware time t (us, 30-bit wrapping)."""
        ctx = self.ctx
        rec = self.rec
        _put(rec, key, data, dlc)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
        ctx[_C_T] = t
        ctx[_C_VIRTUAL] = 0
        # viper takes any buffer for a pointer argument; the stubs type the
        # pointers as classes of their own
        _scan(rec, 0, 1, ctx, self.tab, self.val.st, self.values, self.econ.p, self.econ.acc, self.decode_at)  # pyright: ignore[reportArgumentType]

    def records(self, buf, views, n, virtual):
        """Process n stream records held in buf (views: unused, kept for callers)."""
        # The count a status line reports is the records before it, however
        # the stream happened to be cut into blocks: runs stay bit-identical.
        counted = self.frames
        ctx = self.ctx
        ctx[_C_VIRTUAL] = 1 if virtual else 0
        tab = self.tab
        st = self.val.st
        values = self.values
        p = self.econ.p
        acc = self.econ.acc
        dec = self.decode_at
        j = 0
        while True:
            j = _scan(buf, j, n, ctx, tab, st, values, p, acc, dec)  # pyright: ignore[reportArgumentType]
            if j >= n:
                break
            o = j * 24
            if buf[o + 12] & 0x80:  # a control record, not a frame
                if buf[o + 8] == record.CONTROL_END_OF_DRIVE:
                    self.ended = True
                    self.frames = counted + j
                    return
                j += 1
                continue
            # a 10 Hz tick is due at record j: run it, then the frame
            self.frames = counted + j
            self.clock(rec_time(buf, o))
        self.frames = counted + n

    def clock(self, t):
        """Advance firmware time to t, running the 10 Hz ticks that fall due."""
        ctx = self.ctx
        ctx[_C_T] = t
        if not ctx[_C_STARTED]:
            ctx[_C_STARTED] = 1
            ctx[_C_NT] = tadd(t, TICK_US)
            return
        nt = ctx[_C_NT]
        k = 0
        # inline tdiff(t, nt) >= 0: a tick is due
        while ((t - nt + 0x20000000) & 0x3FFFFFFF) >= 0x20000000:
            self.tick(nt)
            nt = (nt + TICK_US) & 0x3FFFFFFF
            k += 1
            if k >= 600:  # a gap of over a minute: resynchronise
                nt = tadd(t, TICK_US)
                break
        ctx[_C_NT] = nt

    # ------------------------------------------------------------------
    # 10 Hz
    # ------------------------------------------------------------------
    def tick(self, t):
        self.ticks += 1
        econ = self.econ
        acc = econ.acc
        acc[_econ.TICKS] += 1
        val = self.val
        valid = val.vb
        values = self.values
        n_ev = val.check_timeouts(t)  # timeouts, VALID flags, lost/restored
        # speed plausibility against the mean wheel speed (2 m/s = 7.2 km/h)
        m = self.m_speed
        sp_valid = m >= 0 and valid[m]
        v = 0
        if sp_valid:
            c = self.c_speed
            v = (values[self.s_speed] * c[0] + c[1]) // c[2]
            m = self.m_wheels
            if m >= 0 and valid[m]:
                s = self.s_wheels
                c = self.c_wheel
                wsum = values[s[0]] + values[s[1]] + values[s[2]] + values[s[3]]
                wv = (wsum * c[0] + c[1]) // c[2] // 4
                if abs(wv - v) > 720:
                    self.ok_cnt = 0
                    self.imp_cnt += 1
                    if self.imp_cnt >= 3:
                        self.implausible = True
                else:
                    self.imp_cnt = 0
                    self.ok_cnt += 1
                    if self.ok_cnt >= 10:
                        self.implausible = False
        speed_ok = sp_valid and not self.implausible
        self.speed_ok = speed_ok
        ep = econ.p
        ep[_econ.P_SPEED_OK] = 1 if speed_ok else 0
        stopped = ep[_econ.P_STOPPED]
        self.v = v
        # acceleration over the last second, cm/s2
        vh = self.vhist
        a = 0
        vpos = self.vpos
        if speed_ok:
            a = (v - vh[vpos]) * 5 // 18
            vh[vpos] = v
        else:
            for k in range(10):
                vh[k] = v
        self.vpos = vpos + 1 if vpos < 9 else 0
        m = self.m_eng
        eng_ok = m >= 0 and valid[m] and (self.m_temp < 0 or valid[self.m_temp])
        rpm = -1
        if self.s_rpm >= 0:
            c = self.c_rpm
            rpm = (values[self.s_rpm] * c[0] + c[1]) // c[2]
        m = self.m_pedal
        pedal_ok = m >= 0 and valid[m]
        pedal = -1
        if pedal_ok:
            c = self.c_pedal
            pedal = (values[self.s_pedal] * c[0] + c[1]) // c[2]
        boost = -1
        if self.s_boost >= 0:
            c = self.c_boost
            boost = (values[self.s_boost] * c[0] + c[1]) // c[2]
        temp = 0
        if self.s_temp >= 0:
            c = self.c_temp
            temp = (values[self.s_temp] * c[0] + c[1]) // c[2]
        running = self.s_running >= 0 and values[self.s_running]
        idling = speed_ok and stopped and running and self.engine
        if idling:
            acc[_econ.IDLE_TICKS] += 1
        if speed_ok and not stopped:
            acc[_econ.MOVING_TICKS] += 1
        # eco score (needs speed; engine terms only with valid engine data)
        if speed_ok and (eng_ok or not self.engine):
            s = self.eco.update(v, a, rpm if eng_ok else -1, pedal, boost if eng_ok else -1, idling)
            if running or not stopped:
                acc[_econ.ECO_SUM] += s
                acc[_econ.ECO_N] += 1
                if acc[_econ.ECO_N] >= 10000000:
                    acc[_econ.ECO_SUM] //= 2
                    acc[_econ.ECO_N] //= 2
        t_ds = acc[_econ.TICKS]
        al = self.alerts
        al.update(t_ds, speed_ok, v, pedal_ok, pedal, eng_ok, rpm, boost, temp)
        ev = al.events
        for k in range(_alerts.N_KINDS):
            if ev[k]:
                self.warning_event(k, ev[k], t_ds)
        # signal lost / restored (sweep() found them)
        if n_ev:
            events = val.events
            for i in range(val.n):
                e = events[i]
                if e & 1:
                    self.signal_event(i, b"lost", t_ds)
                if e & 2:
                    self.signal_event(i, b"restored", t_ds)
        if self.port is not None:
            self.poll_bus()
        if self.gpio is not None:
            self.gpio.show(al.highest_level())
        if self.transmit:
            self.send_status()
        # 1 Hz: windows
        self.sec_cnt += 1
        if self.sec_cnt >= 10:
            self.sec_cnt = 0
            self.second()
        self.status_cnt += 1
        if self.status_cnt >= self.status_every:
            self.status_cnt = 0
            self.status()
        if self.store is not None:
            self.save_cnt += 1
            if self.save_cnt >= self.save_every:
                self.save_cnt = 0
                self.save()
        if self.debug_bounds:
            self.check_bounds()

    def second(self):
        econ = self.econ
        fuel_ok = self.m_fuel >= 0 and self.val.vb[self.m_fuel]
        d = econ.dist_odo()
        f = econ.fuel_odo()
        p = self.w_pos
        self.w_dist[p] = d
        self.w_fuel[p] = f
        n = self.w_n
        last = (p - 1) % (_WINDOW_S + 1)
        first = (p - n) % (_WINDOW_S + 1)
        self.instant_x100 = -1
        self.rolling_x100 = -1
        if n >= 1 and fuel_ok and self.speed_ok:
            self.instant_x100 = self._kmpl_x100(d - self.w_dist[last], f - self.w_fuel[last])
            self.rolling_x100 = self._kmpl_x100(d - self.w_dist[first], f - self.w_fuel[first])
        self.w_pos = (p + 1) % (_WINDOW_S + 1)
        if n < _WINDOW_S:
            self.w_n = n + 1

    @staticmethod
    def _kmpl_x100(dmm, ful):
        if dmm < 0:
            dmm += ODO_PERIOD
        if ful < 0:
            ful += ODO_PERIOD
        if ful <= 0:
            return -2 if dmm > 0 else -1  # -2: coasting on fuel cut
        if ful >= 100000000:
            return -1
        r = ratio_digits(dmm, ful, 2)  # mm / uL = km/L
        return r if r < 20475 else 20475

    # ------------------------------------------------------------------
    # figures
    # ------------------------------------------------------------------
    def trip_kmpl_x1000(self):
        """Trip km/L x 1000 from metres and 10 uL units (-1 when no fuel)."""
        econ = self.econ
        m = econ.dist_m()
        ml = econ.fuel_ml()
        if ml < 1000000:
            f10 = ml * 100 + econ.fuel_sub_ul() // 10
            if f10 <= 0:
                return -1
            return ratio_digits(m, f10, 5)
        return ratio_digits(m, ml, 3)

    @staticmethod
    def mpg_x100(k):
        # US mpg = km/L * 2.352146 (3.785411784 L/gal / 1.609344 km/mi)
        return (2 * k + k * 3521 // 10000 + k * 46 // 10000000) // 10

    def wh_per_km_x10(self):
        m = self.econ.dist_m()
        w = self.econ.net_wh()
        mw = self.econ.net_sub_mwh()
        if m <= 0:
            return None
        neg = w < 0
        if neg:
            w, mw = -w - 1, 1000 - mw
            if mw == 1000:
                w, mw = w + 1, 0
        r = ratio_digits(w, m, 4) + ratio_digits(mw, m, 1)
        return -r if neg else r

    # ------------------------------------------------------------------
    # telemetry
    # ------------------------------------------------------------------
    def _t(self, w):
        w.kfix(b'"t_s":', self.econ.acc[_econ.TICKS], 1)

    def warning_event(self, k, ev, t_ds):
        w = self.w
        al = self.alerts
        w.begin(T_WARNING)
        w.kstr(b'"kind":', _alerts.KINDS[k])
        w.kstr(b'"level":', _alerts.LEVELS[al.alarms[k].level])
        w.kstr(b'"state":', STATES[ev])
        w.kfix(b'"t_s":', t_ds, 1)
        if k == _alerts.OVERSPEED or k == _alerts.BELOW_MIN or k == _alerts.CANNOT_HOLD:
            w.kfix(b'"speed_kmh":', self.v, 2)
        w.end()

    def signal_event(self, i, state, t_ds):
        w = self.w
        w.begin(T_SIGNAL)
        w.kstr(b'"state":', state)
        w.kstr(b'"name":', self.msg_names[i])
        w.kfix(b'"t_s":', t_ds, 1)
        w.end()

    def error(self, message):
        """A logged error line (boot time: may allocate)."""
        if len(message) > 300:
            message = message[:300] + "..."
        # JSON-safe: no quote, backslash or control character left raw
        message = "".join(c if c >= " " else "\\u%04x" % ord(c) for c in message.replace("\\", "\\\\"))
        w = self.w
        w.begin(T_ERROR)
        w.kstr(b'"message":', message.replace('"', "'").encode())
        w.end()

    def info(self, key, value):
        w = self.w
        w.begin(T_INFO)
        w.kstr(key, value)
        w.end()

    def _kmpl_field(self, w, key, x100):
        if x100 >= 0:
            w.kfix(key, x100, 2)
        else:
            w.knull(key)

    def status(self):
        w = self.w
        econ = self.econ
        val = self.val
        valid = val.vb
        w.begin(T_STATUS)
        self._t(w)
        if self.speed_ok:
            w.kfix(b'"speed_kmh":', self.v, 2)
        else:
            w.knull(b'"speed_kmh":')
        w.key(b'"distance_km":')
        w.fixed(econ.dist_m(), 3)
        if self.kind != KIND_EV:
            w.key(b'"fuel_l":')
            w.fixed(econ.fuel_ml(), 3)
            fuel_ok = self.m_fuel >= 0 and valid[self.m_fuel]
            self._kmpl_field(w, b'"instant_km_per_l":', self.instant_x100 if fuel_ok else -1)
            self._kmpl_field(w, b'"rolling_km_per_l":', self.rolling_x100)
            k = self.trip_kmpl_x1000()
            if k > 0:
                w.kfix(b'"trip_km_per_l":', k // 10, 2)
                w.kfix(b'"l_per_100km":', 10000000 // k, 2)
                w.kfix(b'"mpg_us":', self.mpg_x100(k), 2)
            else:
                w.knull(b'"trip_km_per_l":')
                w.knull(b'"l_per_100km":')
                w.knull(b'"mpg_us":')
        if self.kind == KIND_EV or self.kind == KIND_HYBRID:
            w.kfix(b'"energy_kwh":', econ.net_wh(), 3)
            x = self.wh_per_km_x10()
            if x is None:
                w.knull(b'"wh_per_km":')
            else:
                w.kfix(b'"wh_per_km":', x, 1)
        w.kint(b'"eco_score":', self.eco.score)
        w.kint(b'"eco_level":', self.eco.level)
        w.kstr(b'"eco_hint":', HINTS[self.eco.hint])
        al = self.alerts
        w.open_list(b'"warnings":')
        for k in range(_alerts.N_KINDS):
            if al.alarms[k].active:
                w.item_str(_alerts.KINDS[k])
        w.close_list()
        w.kstr(b'"warning_level":', _alerts.LEVELS[al.highest_level()])
        all_ok = True
        w.open_list(b'"missing":')
        for i, name in self.required:
            if not valid[i]:
                w.item_str(name)
                all_ok = False
        w.close_list()
        w.open_list(b'"implausible":')
        if self.implausible:
            w.item_str(b"VEHICLE_SPEED.VehicleSpeed")
            all_ok = False
        w.close_list()
        w.kbool(b'"valid":', all_ok)
        w.kstr(b'"bus":', BUS_NAMES[self.bus_state])
        w.kint(b'"frames":', self.frames)
        w.kstr(b'"profile":', self.profile)
        w.end()

    def trip(self):
        """The trip summary line (end of input, on demand)."""
        w = self.w
        econ = self.econ
        acc = econ.acc
        w.begin(T_TRIP)
        w.kstr(b'"vehicle":', self.vehicle)
        w.kstr(b'"profile":', self.profile)
        w.kfix(b'"duration_s":', acc[_econ.TICKS], 1)
        w.key(b'"distance_km":')
        w.fixed(econ.dist_m(), 3)
        w.raw(_pad3(econ.dist_sub_mm()))
        w.key(b'"fuel_l":')
        w.fixed(econ.fuel_ml(), 3)
        w.raw(_pad3(econ.fuel_sub_ul()))
        k = self.trip_kmpl_x1000() if self.kind != KIND_EV else -1
        if k > 0:
            w.kfix(b'"km_per_l":', k, 3)
            w.kfix(b'"l_per_100km":', 100000000 // k, 3)
            w.kfix(b'"mpg_us":', self.mpg_x100(k), 2)
        else:
            w.knull(b'"km_per_l":')
            w.knull(b'"l_per_100km":')
            w.knull(b'"mpg_us":')
        w.key(b'"idle_fuel_l":')
        w.fixed(econ.fuel_ml(_econ.IDLE_FUEL), 3)
        w.raw(_pad3(econ.fuel_sub_ul(_econ.IDLE_FUEL)))
        w.kfix(b'"idle_s":', acc[_econ.IDLE_TICKS], 1)
        w.kfix(b'"idle_stop_s":', econ.idle_stop_s10(), 1)
        wh = econ.net_wh()
        mwh = econ.net_sub_mwh()
        w.key(b'"energy_kwh":')
        if wh < 0:
            w.raw(b"-")
            wh, mwh = -wh - 1, 1000 - mwh
            if mwh == 1000:
                wh, mwh = wh + 1, 0
        w.fixed(wh, 3)
        w.raw(_pad3(mwh))
        w.kfix(b'"energy_out_kwh":', econ.energy_mwh(_econ.E_POS), 6)
        w.kfix(b'"energy_in_kwh":', econ.energy_mwh(_econ.E_NEG), 6)
        if self.kind == KIND_HYBRID:
            w.kfix(b'"assist_kwh":', econ.energy_mwh(_econ.E_POS), 6)
        else:
            w.knull(b'"assist_kwh":')
        w.kfix(b'"regen_kwh":', econ.energy_mwh(_econ.E_REGEN), 6)
        x = self.wh_per_km_x10() if self.kind != 0 else None
        if x is None:
            w.knull(b'"wh_per_km":')
            w.knull(b'"mpge":')
        else:
            w.kfix(b'"wh_per_km":', x, 1)
            if self.kind == KIND_EV and x > 0:
                # MPGe = 33705 Wh/gal / (Wh/km * 1.609344 km/mi)
                w.kfix(b'"mpge":', ratio_digits(33705, x, 2) * 10000 // 16093, 1)
            else:
                w.knull(b'"mpge":')
        n = acc[_econ.ECO_N]
        w.kint(b'"eco_score":', acc[_econ.ECO_SUM] // n if n else 100)
        al = self.alerts
        w.open_list(b'"warnings":')
        log = al.log
        for j in range(al.log_n):
            w.open_obj()
            w.kstr(b'"kind":', _alerts.KINDS[log[j * 4]])
            w.kstr(b'"level":', _alerts.LEVELS[log[j * 4 + 1]])
            w.kfix(b'"start_s":', log[j * 4 + 2], 1)
            if log[j * 4 + 3] >= 0:
                w.kfix(b'"end_s":', log[j * 4 + 3], 1)
            else:
                w.knull(b'"end_s":')
            w.close_obj()
        w.close_list()
        w.kint(b'"warning_count":', al.log_total)
        w.kint(b'"frames":', self.frames)
        w.kint(b'"bad_frames":', self.val.bad_total())
        w.kint(b'"unknown_frames":', self.unknown)
        w.kint(b'"skipped_frames":', self.skipped)  # remote and error frames
        w.kint(b'"tx_frames":', self.tx_frames)
        w.kbool(b'"restored":', self.restored)
        w.end()

    def finish(self):
        """End of input / shutdown: close open warnings, summary, save."""
        self.alerts.close_all(self.econ.acc[_econ.TICKS])
        self.trip()
        if self.store is not None:
            self.save()

    # ------------------------------------------------------------------
    # bus, transmit, persistence
    # ------------------------------------------------------------------
    def poll_bus(self):
        port = self.port
        if port is None:
            return
        s = port.state()
        self.bus_state = s
        if s == 3:
            port.restart()  # the port rate-limits with its own back-off

    def send_status(self):
        gen = self.gen
        values = self.values
        slot = gen.SLOT
        buf = self.tx_buf
        if self.tx_eco >= 0:
            k = self.trip_kmpl_x1000()
            values[slot["KD_ECO_STATUS.InstantKmPerL"]] = self.instant_x100 // 5 if self.instant_x100 > 0 else 0
            values[slot["KD_ECO_STATUS.TripKmPerL"]] = min(k // 50, 4095) if k > 0 else 0
            values[slot["KD_ECO_STATUS.EcoScore"]] = self.eco.score
            values[slot["KD_ECO_STATUS.EcoLevel"]] = self.eco.level
            values[slot["KD_ECO_STATUS.EcoHint"]] = self.eco.hint
            values[slot["KD_ECO_STATUS.SignalsValid"]] = 1 if self.speed_ok else 0
            x = self.wh_per_km_x10() if self.kind != 0 else None
            values[slot["KD_ECO_STATUS.TripWhPerKm"]] = 0 if (x is None or x < 0) else min(x // 10, 1023)
            self._send(self.tx_eco, buf)
        if self.tx_warn >= 0:
            al = self.alerts
            m = al.active_mask()
            values[slot["KD_WARNING.Overspeed"]] = m & 1
            values[slot["KD_WARNING.CannotHoldSpeed"]] = (m >> 1) & 1
            values[slot["KD_WARNING.BelowMinimum"]] = (m >> 2) & 1
            values[slot["KD_WARNING.EngineStress"]] = (m >> 3) & 1
            values[slot["KD_WARNING.WarningLevel"]] = al.highest_level()
            values[slot["KD_WARNING.SpeedProfile"]] = al.code
            values[slot["KD_WARNING.SpeedLimit"]] = min(al.limit // 100, 255)
            ex = (self.v - al.limit) // 100
            values[slot["KD_WARNING.SpeedExcess"]] = -128 if ex < -128 else (127 if ex > 127 else ex)
            self._send(self.tx_warn, buf)
        if self.tx_trip >= 0:
            acc = self.econ.acc
            page = self.tx_page
            self.tx_page = (page + 1) % 3
            values[slot["KD_TRIP_SUMMARY.TripPage"]] = page
            if page == 0:
                _limbs(values, slot["KD_TRIP_SUMMARY.TripDistance"], self.econ.dist_m())
                values[slot["KD_TRIP_SUMMARY.TripTime"]] = acc[_econ.TICKS] // 10
            elif page == 1:
                _limbs(values, slot["KD_TRIP_SUMMARY.TripFuel"], self.econ.fuel_ml())
                values[slot["KD_TRIP_SUMMARY.TripEnergy"]] = self.econ.net_wh()
            else:
                values[slot["KD_TRIP_SUMMARY.IdleTime"]] = acc[_econ.IDLE_TICKS] // 10
                values[slot["KD_TRIP_SUMMARY.WarningCount"]] = min(self.alerts.log_total, 255)
                n = acc[_econ.ECO_N]
                values[slot["KD_TRIP_SUMMARY.EcoScoreAvg"]] = acc[_econ.ECO_SUM] // n if n else 100
            self._send(self.tx_trip, buf)

    def _send(self, idx, buf):
        gen = self.gen
        n = gen.encode(idx, self.values, buf)
        port = self.port
        if port is not None and port.send(gen.MSG_IDS[idx], gen.MSG_EXTENDED[idx], buf, n):
            self.tx_frames += 1
        else:
            self.tx_dropped += 1

    def save(self):
        store = self.store
        if store is None:
            return
        try:
            store.save(self.econ.acc, self.alerts)
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
            if not -0x40000000 <= x < 0x40000000:
                raise OverflowError("accumulator left the 31-bit range")
        st = self.val.st
        for i in range(self.val.n):
            x = st[i * 13]
            if not 0 <= x < 0x40000000:
                raise OverflowError("clock left the 30-bit range")


def _pad3(x):
    return b"%03d" % x


def _limbs(values, slot, x):
    """Store x (< 2**30) as 16-bit limbs, least significant first."""
    values[slot] = x & 0xFFFF
    values[slot + 1] = x >> 16
