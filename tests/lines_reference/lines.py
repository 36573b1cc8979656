"""The firmware's telemetry lines (status, trip, warning, signal, error, info),
formatted into the Writer's preallocated buffer: the 10 Hz ones allocate
nothing. Keys and fields are documented in docs/firmware.md.

(The differential tests' reference: keifw/lines.py as at cfc9719, an element
at a time, with the data-quality fields added later written the same way.)
"""

from . import alerts as _alerts
from . import economy as _econ
from . import fusion as _fusion
from .eco import HINTS
from .figures import trip_kmpl_x1000, mpg_x100, wh_per_km_x10
from .fixed import ratio_digits
from .obdpid import PIDS
from .vehicle import KIND_EV, KIND_HYBRID, KIND_ICE

BUS_NAMES = (b"active", b"warning", b"passive", b"bus_off", b"stopped")
REJECT_KEYS = tuple(b'"' + reason + b'":' for reason in _econ.REJECT_REASONS)

T_STATUS = b'"type":"status"'
T_WARNING = b'"type":"warning"'
T_SIGNAL = b'"type":"signal"'
T_TRIP = b'"type":"trip"'
T_ERROR = b'"type":"error"'
T_INFO = b'"type":"info"'
STATES = (b"", b"raised", b"cleared", b"escalated")


def warning(fw, k, ev, t_ds):
    w = fw.w
    al = fw.alerts
    w.begin(T_WARNING)
    w.kstr(b'"kind":', _alerts.KINDS[k])
    w.kstr(b'"level":', _alerts.LEVELS[al.alarms[k].level])
    w.kstr(b'"state":', STATES[ev])
    w.kfix(b'"t_s":', t_ds, 1)
    if k == _alerts.OVERSPEED or k == _alerts.BELOW_MIN or k == _alerts.CANNOT_HOLD:
        w.kfix(b'"speed_kmh":', fw.inputs.v, 2)
    w.end()


def signal(fw, i, state, t_ds):
    w = fw.w
    w.begin(T_SIGNAL)
    w.kstr(b'"state":', state)
    w.kstr(b'"name":', fw.msg_names[i])
    w.kfix(b'"t_s":', t_ds, 1)
    w.end()


def error(w, message):
    """A logged error line (boot time: may allocate)."""
    if len(message) > 300:
        message = message[:300] + "..."
    # JSON-safe: no quote, backslash or control character left raw
    message = "".join(c if c >= " " else "\\u%04x" % ord(c) for c in message.replace("\\", "\\\\"))
    w.begin(T_ERROR)
    w.kstr(b'"message":', message.replace('"', "'").encode())
    w.end()


def info(w, key, value):
    w.begin(T_INFO)
    w.kstr(key, value)
    w.end()


def _kmpl_field(w, key, x100):
    if x100 >= 0:
        w.kfix(key, x100, 2)
    else:
        w.knull(key)


def status(fw):
    w = fw.w
    econ = fw.econ
    inp = fw.inputs
    valid = fw.val.vb
    w.begin(T_STATUS)
    w.kfix(b'"t_s":', econ.acc[_econ.TICKS], 1)
    if inp.speed_ok:  # the speed fusion's trusted speed
        w.kfix(b'"speed_kmh":', inp.v, 2)
    else:
        w.knull(b'"speed_kmh":')
    w.key(b'"distance_km":')
    w.fixed(econ.dist_m(), 3)
    if fw.kind != KIND_EV:
        fuel = fw.has_fuel()
        if fuel:
            w.key(b'"fuel_l":')
            w.fixed(econ.fuel_ml(), 3)
        else:
            w.knull(b'"fuel_l":')
        obd = fw.obd
        fuel_ok = (inp.m_fuel >= 0 and valid[inp.m_fuel]) or (obd is not None and obd.integ.have_prev)
        _kmpl_field(w, b'"instant_km_per_l":', fw.windows.instant_x100 if fuel_ok else -1)
        _kmpl_field(w, b'"rolling_km_per_l":', fw.windows.rolling_x100)
        k = trip_kmpl_x1000(econ) if fuel else -1
        if k > 0:
            w.kfix(b'"trip_km_per_l":', k // 10, 2)
            w.kfix(b'"l_per_100km":', 10000000 // k, 2)
            w.kfix(b'"mpg_us":', mpg_x100(k), 2)
        else:
            w.knull(b'"trip_km_per_l":')
            w.knull(b'"l_per_100km":')
            w.knull(b'"mpg_us":')
    if fw.kind == KIND_EV or fw.kind == KIND_HYBRID:
        w.kfix(b'"energy_kwh":', econ.net_wh(), 3)
        x = wh_per_km_x10(econ)
        if x is None:
            w.knull(b'"wh_per_km":')
        else:
            w.kfix(b'"wh_per_km":', x, 1)
    if fw.eco.samples:
        w.kint(b'"eco_score":', fw.eco.score)
        w.kint(b'"eco_level":', fw.eco.level)
        w.kstr(b'"eco_hint":', HINTS[fw.eco.hint])
    else:
        w.knull(b'"eco_score":')
        w.knull(b'"eco_level":')
        w.knull(b'"eco_hint":')
    al = fw.alerts
    w.open_list(b'"warnings":')
    for k in range(_alerts.N_KINDS):
        if al.alarms[k].active:
            w.item_str(_alerts.KINDS[k])
    w.close_list()
    w.kstr(b'"warning_level":', _alerts.LEVELS[al.highest_level()])
    all_ok = True
    w.open_list(b'"missing":')
    for i, name in fw.required:
        if not valid[i]:
            w.item_str(name)
            all_ok = False
    if fw.obd is not None and fw.obd.lost:
        w.item_str(b"OBD-II")
        all_ok = False
    elif fw.obd is not None and fw.obd.lacking >= 0:
        w.item_str(b"OBD-II 0x%02X" % PIDS[fw.obd.lacking])
        all_ok = False
    w.close_list()
    w.open_list(b'"implausible":')
    fz = fw.fusion
    for r in range(fz.n):
        if fz.src[r * _fusion.F_STRIDE + _fusion.F_FAULT]:
            w.item_str(fz.names[r])
            all_ok = False
    if fw.econ.fuel_implausible:
        w.item_str(fw.fuel_name)
        all_ok = False
    for i in range(len(fw.msg_names)):
        if fw.scanner.flooded(i):
            w.item_str(fw.msg_names[i])
            all_ok = False
    w.close_list()
    w.kbool(b'"valid":', all_ok)
    w.kstr(b'"bus":', BUS_NAMES[fw.bus_state])
    w.kint(b'"frames":', fw.frames)
    w.kint(b'"lost_frames":', fw.lost_frames)
    port_counters(w, fw)
    w.kstr(b'"profile":', fw.profile)
    _open_obj(w, b'"quality":')
    if inp.speed_ok:
        w.kstr(b'"speed_source":', fz.group_names[inp.o[11]])
    else:
        w.knull(b'"speed_source":')
    _quality(w, econ)
    w.open_list(b'"faulty":')
    for r in range(fz.n):
        reason = fz.src[r * _fusion.F_STRIDE + _fusion.F_FAULT]
        if reason:
            w.open_obj()
            w.kstr(b'"source":', fz.names[r])
            w.kstr(b'"reason":', _fusion.FAULTS[reason])
            w.close_obj()
    w.close_list()
    w.close_obj()
    w.end()


def _open_obj(w, key):
    w.key(key)
    w.st[1] = 1  # the key is there: no comma before the brace
    w.open_obj()


def _quality(w, econ):
    acc = econ.acc
    w.kfix(b'"fallback_s":', acc[_econ.FALLBACK_TICKS], 1)
    w.kfix(b'"fallback_km":', acc[_econ.FALLBACK_DIST], 3)
    w.kfix(b'"untrusted_s":', acc[_econ.UNTRUSTED_TICKS], 1)
    _open_obj(w, b'"rejected":')
    for k in range(len(REJECT_KEYS)):
        w.kint(REJECT_KEYS[k], econ.p[_econ.P_REJ_DLC + k])
    w.close_obj()


def port_counters(w, fw):
    """The CAN controller's side of the status line: frames it lost to
    overruns (MCP2515: RXnOVR flags seen, at least a frame each; machine.CAN:
    recv's overrun flag),
    frames that passed its filters but no decoder wants, transmit frames it
    refused, and its error counters where it has them (MCP2515 TEC / REC)."""
    port = fw.port
    w.kint(b'"overruns":', getattr(port, "overruns", 0))
    w.kint(b'"filtered_out":', fw.unknown)
    w.kint(b'"tx_dropped":', fw.tx.dropped if fw.tx is not None else 0)
    if hasattr(port, "tec"):
        w.kint(b'"tec":', port.tec)
        w.kint(b'"rec":', port.rec)


def _pad3(x):
    return b"%03d" % x


def trip(fw):
    """The trip summary line (end of input, on demand)."""
    w = fw.w
    econ = fw.econ
    acc = econ.acc
    kind = fw.kind
    w.begin(T_TRIP)
    w.kstr(b'"vehicle":', fw.vehicle)
    w.kstr(b'"profile":', fw.profile)
    w.kfix(b'"duration_s":', acc[_econ.TICKS], 1)
    w.key(b'"distance_km":')
    w.fixed(econ.dist_m(), 3)
    w.raw(_pad3(econ.dist_sub_mm()))
    fuel = kind != KIND_EV and fw.has_fuel()
    if fuel:
        w.key(b'"fuel_l":')
        w.fixed(econ.fuel_ml(), 3)
        w.raw(_pad3(econ.fuel_sub_ul()))
    else:
        w.knull(b'"fuel_l":')
    k = trip_kmpl_x1000(econ) if fuel else -1
    if k > 0:
        w.kfix(b'"km_per_l":', k, 3)
        w.kfix(b'"l_per_100km":', 100000000 // k, 3)
        w.kfix(b'"mpg_us":', mpg_x100(k), 2)
    else:
        w.knull(b'"km_per_l":')
        w.knull(b'"l_per_100km":')
        w.knull(b'"mpg_us":')
    if fuel:
        w.key(b'"idle_fuel_l":')
        w.fixed(econ.fuel_ml(_econ.IDLE_FUEL), 3)
        w.raw(_pad3(econ.fuel_sub_ul(_econ.IDLE_FUEL)))
    else:
        w.knull(b'"idle_fuel_l":')
    w.kfix(b'"idle_s":', acc[_econ.IDLE_TICKS], 1)
    w.kfix(b'"idle_stop_s":', econ.idle_stop_s10(), 1)
    if kind == KIND_ICE:  # no pack: no energy figures
        for key in (b'"energy_kwh":', b'"energy_out_kwh":', b'"energy_in_kwh":', b'"assist_kwh":', b'"regen_kwh":'):
            w.knull(key)
    else:
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
        if kind == KIND_HYBRID:
            w.kfix(b'"assist_kwh":', econ.energy_mwh(_econ.E_POS), 6)
        else:
            w.knull(b'"assist_kwh":')
        w.kfix(b'"regen_kwh":', econ.energy_mwh(_econ.E_REGEN), 6)
    x = wh_per_km_x10(econ) if kind != 0 else None
    if x is None:
        w.knull(b'"wh_per_km":')
        w.knull(b'"mpge":')
    else:
        w.kfix(b'"wh_per_km":', x, 1)
        if kind == KIND_EV and x > 0:
            # MPGe = 33705 Wh/gal / (Wh/km * 1.609344 km/mi)
            w.kfix(b'"mpge":', ratio_digits(33705, x, 2) * 10000 // 16093, 1)
        else:
            w.knull(b'"mpge":')
    n = acc[_econ.ECO_N]
    if n:
        w.kint(b'"eco_score":', acc[_econ.ECO_SUM] // n)
    else:
        w.knull(b'"eco_score":')
    al = fw.alerts
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
    w.kint(b'"frames":', fw.frames)
    w.kint(b'"bad_frames":', fw.val.bad_total())
    w.kint(b'"unknown_frames":', fw.unknown)
    w.kint(b'"skipped_frames":', fw.skipped)  # remote and error frames
    w.kint(b'"lost_frames":', fw.lost_frames)  # lost on a byte link (keifw/link.py)
    w.kint(b'"clock_jumps":', fw.clock_jumps)  # timestamp discontinuities absorbed
    w.kint(b'"implausible_frames":', fw.econ.p[_econ.P_SPEED_JUMPS])  # speed changes no car makes, fuel no engine burns
    w.kint(b'"tx_frames":', fw.tx_frames)
    _trip_quality(w, fw, fuel, n)
    if fw.obd is not None:
        from .obdlines import write_trip

        write_trip(fw.obd, w)
    w.kbool(b'"restored":', fw.restored)
    w.end()


def _trip_quality(w, fw, fuel, eco_samples):
    fz = fw.fusion
    src = fz.src
    stride = _fusion.F_STRIDE
    _open_obj(w, b'"quality":')
    w.open_list(b'"sources":')
    for r in range(fz.n):
        g = src[r * stride + _fusion.F_GROUP]
        first = r == 0 or src[(r - 1) * stride + _fusion.F_GROUP] != g
        if first and src[r * stride + _fusion.F_LEAD_TICKS]:
            w.open_obj()
            w.kstr(b'"source":', fz.group_names[g])
            w.kfix(b'"lead_s":', src[r * stride + _fusion.F_LEAD_TICKS], 1)
            w.close_obj()
    w.close_list()
    _quality(w, fw.econ)
    w.open_list(b'"faulty":')
    for r in range(fz.n):
        reason = src[r * stride + _fusion.F_EVER]
        if reason:
            w.open_obj()
            w.kstr(b'"source":', fz.names[r])
            w.kstr(b'"reason":', _fusion.FAULTS[reason])
            w.kfix(b'"s":', src[r * stride + _fusion.F_FAULT_TICKS], 1)
            w.close_obj()
    w.close_list()
    w.open_list(b'"not_measured":')
    if fw.kind != KIND_EV and not fuel:
        w.item_str(b"fuel")
    if not eco_samples:
        w.item_str(b"eco_score")
    w.close_list()
    w.close_obj()
