"""The firmware's telemetry lines (status, trip, warning, signal, error, info),
formatted into the Writer's preallocated buffer: the 10 Hz ones allocate
nothing. Keys and fields are documented in docs/firmware.md.
"""

import micropython
from micropython import const

from . import alerts as _alerts
from . import economy as _econ
from . import fusion as _fusion
from . import inputs as _inputs
from . import scan as _scan
from .eco import HINTS
from .figures import mpg_x100, trip_kmpl_x1000, wh_per_km_x10
from .fixed import ratio_digits
from .telemetry import ABSENT, N_OBJS, NULL, template
from .vehicle import KIND_EV, KIND_HYBRID, KIND_ICE

# the status line reads these slots of the economy's, the inputs' and the
# scanner's arrays directly (an attribute or property call costs ~1,000
# Cortex-M instructions, the line ~100 of them): their layouts, checked here
_TICKS = const(14)
_DIST = const(0)
_FUEL = const(2)
_O_SPEED_OK = const(0)
_O_V = const(1)
_O_FAULTY = const(10)
_O_LEADER = const(11)
_C_UNKNOWN = const(4)
_R_STRIDE = const(8)
_R_FLOODED = const(3)
assert (_econ.TICKS, _econ.DIST, _econ.FUEL) == (_TICKS, _DIST, _FUEL)
assert (_inputs.O_SPEED_OK, _inputs.O_V, _inputs.O_FAULTY, _inputs.O_LEADER) == (
    _O_SPEED_OK, _O_V, _O_FAULTY, _O_LEADER)
assert (_econ.FALLBACK_DIST, _econ.FALLBACK_TICKS, _econ.UNTRUSTED_TICKS, _econ.P_REJ_DLC, _econ.P_REJ_STALE) == (
    20, 22, 23, 23, 28)  # _quality's literals
assert (_scan.C_UNKNOWN, _scan.R_STRIDE, _scan.R_FLOODED) == (_C_UNKNOWN, _R_STRIDE, _R_FLOODED)
_F_STRIDE = const(25)
_F_FAULT = const(11)
_F_EVER = const(22)
assert (_fusion.F_STRIDE, _fusion.F_FAULT, _fusion.F_EVER) == (_F_STRIDE, _F_FAULT, _F_EVER)

BUS_NAMES = (b"active", b"warning", b"passive", b"bus_off", b"stopped")
STATES = (b"", b"raised", b"cleared", b"escalated")

# Each line's elements in order; vals and objs (the Writer's) are filled in
# slot order below each template. %1 a number with 1 decimal, %s a string,
# %l a list of strings, %b a bool, %r raw bytes, %p three more digits.
WARNING = template(b'{"type":"warning","kind":%s,"level":%s,"state":%s,"t_s":%1,"speed_kmh":%2}')
SIGNAL = template(b'{"type":"signal","state":%s,"name":%s,"t_s":%1}')
SOURCE = template(b'{"type":"source","state":%s,"name":%s,"reason":%s,"t_s":%1}')
# the fuel figures (engine cars), the energy ones (hybrid, EV) and tec / rec
# (a port with error counters) ABSENT where they do not apply
# the quality object's common part (status and trip lines): fallback and
# untrusted time, frames rejected by reason (economy.REJECT_REASONS), then
# its faulty sources, one FAULTY (status) or TRIP_FAULTY (trip) each
_QUALITY = (
    b'"fallback_s":%1,"fallback_km":%3,"untrusted_s":%1,"rejected":{"dlc":%0,"checksum":%0,"counter":%0,'
    b'"rate":%0,"plausibility":%0,"stale":%0},"faulty":[')
STATUS = template(  # then one FAULTY per faulty source, QUALITY_END
    b'{"type":"status","t_s":%1,"speed_kmh":%2,"distance_km":%3,"fuel_l":%3,"instant_km_per_l":%2,'
    b'"rolling_km_per_l":%2,"trip_km_per_l":%2,"l_per_100km":%2,"mpg_us":%2,"energy_kwh":%3,"wh_per_km":%1,'
    b'"eco_score":%0,"eco_level":%0,"eco_hint":%r,"warnings":%l,"warning_level":%s,"missing":%l,'
    b'"implausible":%l,"valid":%b,"bus":%s,"frames":%0,"lost_frames":%0,"overruns":%0,"filtered_out":%0,'
    b'"tx_dropped":%0,"tec":%0,"rec":%0,"profile":%s,"quality":{"speed_source":%r,' + _QUALITY)
FAULTY = template(b'{"source":%s,"reason":%s}')
QUALITY_END = template(b']}')  # end() closes the line
TRIP_HEAD = template(
    b'{"type":"trip","vehicle":%s,"profile":%s,"duration_s":%1,"distance_km":%3%p,"fuel_l":%3%p,'
    b'"km_per_l":%3,"l_per_100km":%3,"mpg_us":%2,"idle_fuel_l":%3%p,"idle_s":%1,"idle_stop_s":%1,'
    b'"energy_kwh":%r%3%p,"energy_out_kwh":%6,"energy_in_kwh":%6,"assist_kwh":%6,"regen_kwh":%6,'
    b'"wh_per_km":%1,"mpge":%1,"eco_score":%0,"warnings":[')
TRIP_WARNING = template(b'{"kind":%s,"level":%s,"start_s":%1,"end_s":%1}')
TRIP_COUNTS = template(
    b'],"warning_count":%0,"frames":%0,"bad_frames":%0,"unknown_frames":%0,"skipped_frames":%0,'
    b'"lost_frames":%0,"clock_jumps":%0,"implausible_frames":%0,"tx_frames":%0,"quality":{"sources":[')
TRIP_SOURCE = template(b'{"source":%s,"lead_s":%1}')
TRIP_QUALITY = template(b'],' + _QUALITY)
TRIP_FAULTY = template(b'{"source":%s,"reason":%s,"s":%1}')
TRIP_QUALITY_END = template(b'],"not_measured":%l}')
TRIP_TAIL = template(b',"restored":%b')  # after the OBD-II client's part; end() closes the line
ACK = template(b'{"type":"ack","records":%0}')
HINTS_JSON = tuple(b'"' + hint + b'"' for hint in HINTS)  # eco_hint as it goes out (%r: null without a score)
T_ERROR = b'"type":"error"'
T_INFO = b'"type":"info"'


def warning(fw, k, ev, t_ds):
    w = fw.w
    v = w.vals
    s = w.objs
    s[0] = _alerts.KINDS[k]
    s[1] = _alerts.LEVELS[fw.alerts.alarms[k].level]
    s[2] = STATES[ev]
    v[0] = t_ds
    if k == _alerts.OVERSPEED or k == _alerts.BELOW_MIN or k == _alerts.CANNOT_HOLD:
        v[1] = fw.inputs.v
    else:
        v[1] = ABSENT
    w.line(WARNING)


def signal(fw, i, state, t_ds):
    w = fw.w
    s = w.objs
    s[0] = state
    s[1] = fw.msg_names[i]
    w.vals[0] = t_ds
    w.line(SIGNAL)


def sources(fw, t_ds):
    """A source line for each speed source found faulty or trusted again
    since the last (the fusion counts its verdicts' changes: S_CHANGES)."""
    fz = fw.fusion
    src = fz.src
    latched = fz.latched
    w = fw.w
    s = w.objs
    for r in range(fz.n):
        b = r * _F_STRIDE
        fault = src[b + _F_FAULT]
        if fault != latched[r]:
            latched[r] = fault
            s[0] = b"faulty" if fault else b"trusted"
            s[1] = fz.names[r]
            s[2] = _fusion.FAULTS[src[b + _F_EVER]]
            w.vals[0] = t_ds
            w.line(SOURCE)
    fz.changes = src[_fusion.S_CHANGES]


def error(w, message):
    """A logged error line (boot time: may allocate)."""
    if len(message) > 300:
        message = message[:300] + "..."
    # JSON-safe: no quote, backslash or control character left raw
    message = "".join(c if c >= " " else "\\u%04x" % ord(c) for c in message.replace("\\", "\\\\"))
    w.begin(T_ERROR)
    w.kstr(b'"message":', message.replace('"', "'").encode())
    w.end()


def ack(fw):
    """The records taken so far, at the host's CONTROL_ACK."""
    w = fw.w
    w.vals[0] = fw.frames
    w.line(ACK)


def info(w, key, value):
    w.begin(T_INFO)
    w.kstr(key, value)
    w.end()


def status(fw):
    # vals in STATUS's slot order: 0 t_s, 1 speed, 2 distance, 3 fuel, 4-5
    # instant / rolling km/L, 6-8 trip km/L, L/100 km, mpg, 9-10 energy,
    # Wh/km, 11-12 eco score and level, 13-15 the three lists' lengths, 16
    # valid, 17-18 frames, lost, 19-23 the port's counters, 24- quality
    w = fw.w
    v = w.vals
    s = w.objs
    econ = fw.econ
    acc = econ.acc
    o = fw.inputs.o
    valid = fw.val.vb
    obd = fw.obd
    kind = fw.kind
    v[0] = acc[_TICKS]
    v[1] = o[_O_V] if o[_O_SPEED_OK] else NULL
    v[2] = acc[_DIST]
    if kind != KIND_EV:
        fuel = fw.inputs.m_fuel >= 0 or (obd is not None and obd.method != 0)  # (Firmware.has_fuel, inline)
        v[3] = acc[_FUEL] if fuel else NULL
        m = fw.inputs.m_fuel
        win = fw.windows
        x = win.instant_x100 if (m >= 0 and valid[m]) or (obd is not None and obd.integ.have_prev) else -1
        v[4] = x if x >= 0 else NULL  # negative: no figure
        x = win.rolling_x100
        v[5] = x if x >= 0 else NULL
        k = trip_kmpl_x1000(econ) if fuel else -1
        if k > 0:
            v[6] = k // 10
            v[7] = 10000000 // k
            v[8] = mpg_x100(k)
        else:
            v[6] = v[7] = v[8] = NULL
    else:
        v[3] = v[4] = v[5] = v[6] = v[7] = v[8] = ABSENT
    if kind == KIND_EV or kind == KIND_HYBRID:
        v[9] = econ.net_wh()
        x = wh_per_km_x10(econ)
        v[10] = NULL if x is None else x
    else:
        v[9] = v[10] = ABSENT
    eco = fw.eco
    if eco.samples:
        v[11] = eco.score
        v[12] = eco.level
        s[0] = HINTS_JSON[eco.hint]
    else:  # no sample yet: no score
        v[11] = v[12] = NULL
        s[0] = b"null"
    j = 1  # objs: the warnings' names, then the rest in slot order
    al = fw.alerts
    alarms = al.alarms
    for k in range(_alerts.N_KINDS):
        if alarms[k].active:
            s[j] = _alerts.KINDS[k]
            j += 1
    v[13] = j - 1
    s[j] = _alerts.LEVELS[al.highest_level() if j > 1 else 0]  # none active: none
    j += 1
    m = j
    for i, name in fw.required:
        if not valid[i]:
            s[j] = name
            j += 1
    if obd is not None:
        j = obd.missing_names(s, j)
    v[14] = j - m
    m = j
    fz = fw.fusion
    src = fz.src
    if o[_O_FAULTY]:
        for r in range(fz.n):
            if src[r * _F_STRIDE + _F_FAULT]:
                s[j] = fz.names[r]
                j += 1
    if econ.fuel_implausible:
        s[j] = fw.fuel_name
        j += 1
    rate = fw.scanner.rate  # Scanner.flooded(i), for every message
    i = _R_FLOODED
    for name in fw.msg_names:
        if rate[i] and j < N_OBJS - 3:  # room kept for bus, profile and speed source
            s[j] = name
            j += 1
        i += _R_STRIDE
    v[15] = j - m
    v[16] = 1 if v[14] == 0 and v[15] == 0 else 0  # valid: nothing missing or implausible
    s[j] = BUS_NAMES[fw.bus_state]
    s[j + 1] = fw.profile
    s[j + 2] = fz.group_json[o[_O_LEADER]] if o[_O_SPEED_OK] else b"null"
    v[17] = fw.frames
    v[18] = fw.lost_frames
    # the CAN controller's side: frames it lost to overruns (MCP2515: RXnOVR
    # flags seen, at least a frame each; machine.CAN: recv's overrun flag),
    # frames that passed its filters but no decoder wants, transmit frames it
    # refused, and its error counters where it has them (MCP2515 TEC / REC)
    port = fw.port
    v[19] = getattr(port, "overruns", 0)
    v[20] = fw.ctx[_C_UNKNOWN]
    tx = fw.tx
    v[21] = tx.dropped if tx is not None else 0
    if hasattr(port, "tec"):
        v[22] = port.tec
        v[23] = port.rec
    else:
        v[22] = v[23] = ABSENT
    _quality(acc, econ.p, v, 24)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
    w.start(STATUS)
    if o[_O_FAULTY]:
        for r in range(fz.n):
            reason = src[r * _F_STRIDE + _F_FAULT]
            if reason:
                s[0] = fz.names[r]
                s[1] = _fusion.FAULTS[reason]
                w.part(FAULTY)
    w.part(QUALITY_END)
    w.end()


@micropython.viper
def _quality(acc: ptr32, p: ptr32, v: ptr32, j: int):
    """The quality object's common numbers into v from j (_QUALITY's order):
    economy.FALLBACK_TICKS, FALLBACK_DIST, UNTRUSTED_TICKS, then P_REJ_DLC ..
    P_REJ_STALE (the literals, asserted above)."""
    v[j] = acc[22]
    v[j + 1] = acc[20]
    v[j + 2] = acc[23]
    k = 0
    while k < 6:
        v[j + 3 + k] = p[23 + k]
        k += 1


def trip(fw, log=True):
    """The trip summary line (end of input, on demand); ``log`` False: its
    ``warnings`` list empty (the uplink's: each warning went as an event)."""
    w = fw.w
    v = w.vals
    s = w.objs
    econ = fw.econ
    acc = econ.acc
    kind = fw.kind
    s[0] = fw.vehicle
    s[1] = fw.profile
    fuel = kind != KIND_EV and fw.has_fuel()
    v[0] = acc[_econ.TICKS]
    v[1] = econ.dist_m()
    v[2] = econ.dist_sub_mm()
    # a figure with no source is null (its %p digits ABSENT): never a 0
    v[3] = econ.fuel_ml() if fuel else NULL
    v[4] = econ.fuel_sub_ul() if fuel else ABSENT
    k = trip_kmpl_x1000(econ) if fuel else -1
    if k > 0:
        v[5] = k
        v[6] = 100000000 // k
        v[7] = mpg_x100(k)
    else:
        v[5] = v[6] = v[7] = NULL
    v[8] = econ.fuel_ml(_econ.IDLE_FUEL) if fuel else NULL
    v[9] = econ.fuel_sub_ul(_econ.IDLE_FUEL) if fuel else ABSENT
    v[10] = acc[_econ.IDLE_TICKS]
    v[11] = econ.idle_stop_s10()
    s[2] = b""
    if kind != KIND_ICE:
        wh = econ.net_wh()
        mwh = econ.net_sub_mwh()
        if wh < 0:
            s[2] = b"-"
            wh, mwh = -wh - 1, 1000 - mwh
            if mwh == 1000:
                wh, mwh = wh + 1, 0
        v[12] = wh
        v[13] = mwh
        v[14] = econ.energy_mwh(_econ.E_POS)
        v[15] = econ.energy_mwh(_econ.E_NEG)
        v[16] = econ.energy_mwh(_econ.E_POS) if kind == KIND_HYBRID else NULL
        v[17] = econ.energy_mwh(_econ.E_REGEN)
    else:  # no pack
        v[12] = v[14] = v[15] = v[16] = v[17] = NULL
        v[13] = ABSENT
    x = wh_per_km_x10(econ) if kind != 0 else None
    v[18] = v[19] = NULL
    if x is not None:
        v[18] = x
        if kind == KIND_EV and x > 0:
            # MPGe = 33705 Wh/gal / (Wh/km * 1.609344 km/mi)
            v[19] = ratio_digits(33705, x, 2) * 10000 // 16093
    n = acc[_econ.ECO_N]
    v[20] = acc[_econ.ECO_SUM] // n if n else NULL  # no sample: not measured
    w.start(TRIP_HEAD)
    al = fw.alerts
    entries = al.log
    for j in range(al.log_n if log else 0):
        s[0] = _alerts.KINDS[entries[j * 4]]
        s[1] = _alerts.LEVELS[entries[j * 4 + 1]]
        v[0] = entries[j * 4 + 2]
        v[1] = entries[j * 4 + 3] if entries[j * 4 + 3] >= 0 else NULL
        w.part(TRIP_WARNING)
    v[0] = al.log_total
    v[1] = fw.frames
    v[2] = fw.val.bad_total()
    v[3] = fw.unknown
    v[4] = fw.skipped  # remote and error frames
    v[5] = fw.lost_frames  # lost on a byte link (keifw/link.py)
    v[6] = fw.clock_jumps  # timestamp discontinuities absorbed
    v[7] = fw.econ.p[_econ.P_SPEED_JUMPS]  # speed changes no car makes, fuel no engine burns
    v[8] = fw.tx_frames
    w.part(TRIP_COUNTS)
    _trip_quality(fw, fuel, n)
    if fw.obd is not None:
        from .obdlines import write_trip

        write_trip(fw.obd, w)
    v[0] = 1 if fw.restored else 0
    w.part(TRIP_TAIL)
    w.end()


def _trip_quality(fw, fuel, eco_samples):
    """The trip line's quality object: the speed sources and how long each
    was the trusted one, fallback and untrusted time, frames rejected by
    reason, every source found faulty (its last reason, how long), what
    could not be measured."""
    w = fw.w
    v = w.vals
    s = w.objs
    fz = fw.fusion
    src = fz.src
    for r in range(fz.n):
        g = src[r * _F_STRIDE]
        if (r == 0 or src[(r - 1) * _F_STRIDE] != g) and src[r * _F_STRIDE + _fusion.F_LEAD_TICKS]:
            s[0] = fz.group_names[g]
            v[0] = src[r * _F_STRIDE + _fusion.F_LEAD_TICKS]
            w.part(TRIP_SOURCE)
    _quality(fw.econ.acc, fw.econ.p, v, 0)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
    w.part(TRIP_QUALITY)
    for r in range(fz.n):
        reason = src[r * _F_STRIDE + _fusion.F_EVER]
        if reason:
            s[0] = fz.names[r]
            s[1] = _fusion.FAULTS[reason]
            v[0] = src[r * _F_STRIDE + _fusion.F_FAULT_TICKS]
            w.part(TRIP_FAULTY)
    n = 0
    if fw.kind != KIND_EV and not fuel:
        s[n] = b"fuel"
        n += 1
    if not eco_samples:
        s[n] = b"eco_score"
        n += 1
    v[0] = n
    w.part(TRIP_QUALITY_END)
