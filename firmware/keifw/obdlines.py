"""The OBD-II client in the firmware loop and in its telemetry.

``attach(fw, cfg)`` creates the client (keifw/obd.py), hands it the reply
frames through the loop's listener and a call per 10 Hz tick, and writes its
``signal`` events (``OBD-II`` lost / restored); lines.py adds ``OBD-II`` to
a status line's ``missing`` while it is lost and ``write_trip`` to the trip
line: ``fuel_method`` and ``obd`` {vin, supported_pids, requests, responses,
timeouts, negative}.
"""

from . import fusion as _fusion
from . import obd as _obd
from . import obdfuel as _f
from .obd import Client

T_SIGNAL = b'"type":"signal"'
NAME = b"OBD-II"


def attach(fw, cfg):
    """The client on firmware ``fw``; ``fw.obd`` from then on."""
    client = Client(cfg, fw.econ, fw.port)
    # PID 0x0D: a speed source of the firmware's fusion, fresh for the
    # integrator's hold (1 s), whose distance the client adds itself
    client.fusion = fw.fusion
    client.row = fw.fusion.add(NAME, _f.HOLD_US // 100000, _fusion.INTEG_OWNER)
    client.inputs = fw.inputs
    client.integ.o = fw.inputs.o
    client.integ.group = fw.fusion.group_of(client.row)
    keys, mask, value = client.keys()
    fw.listen(keys, client.frame, mask, value)

    def on_tick(t_ds):
        client.tick(fw.t)
        ev = client.events
        if ev:
            client.events = 0
            if ev & 1:
                _signal(fw.w, b"lost", t_ds)
            if ev & 2:
                _signal(fw.w, b"restored", t_ds)

    fw.on_tick(on_tick)
    # on the OBD-II port the DBC's powertrain frames are not there: what can
    # be missing is the client's data
    fw.required = []
    fw.obd = client
    return client


def _signal(w, state, t_ds):
    w.begin(T_SIGNAL)
    w.kstr(b'"state":', state)
    w.kstr(b'"name":', NAME)
    w.kfix(b'"t_s":', t_ds, 1)
    w.end()


def write_trip(client, w):
    """``"fuel_method"`` and ``"obd"`` of the trip line (once a trip: the
    object is formatted here, which allocates): the ECUs that answered
    (each one's replies, requests it left unanswered, response-pending
    replies, whether it is no longer waited for and why), the engine ECU
    (its PIDs win), the fuel methods given up."""
    w.kstr(b'"fuel_method":', _f.METHOD_NAMES[client.method])
    w.key(b'"obd":')
    vin = b'"' + bytes(client.vin) + b'"' if client.vin_len == 17 else b"null"
    pids = b",".join(b"%d" % pid for pid in range(1, 256) if client.supports(pid))
    ecus = b",".join(
        b'{"id":"0x%X","responses":%d,"missed":%d,"pending":%d,"ignored":%s}' % (
            client.ecu_id(s), client.ecu_resp[s], client.ecu_missed[s], client.ecu_pending[s],
            b'"' + _obd.IGNORED[client.ignored[s]] + b'"' if client.ignored[s] else b"null")
        for s in range(_obd.N_ECU) if client.ecus >> s & 1)
    engine = b'"0x%X"' % client.ecu_id(client.engine) if client.engine != 0xFF else b"null"
    fb = client.fallbacks
    fallbacks = b",".join(
        b'{"method":"%s","pid":"0x%02X","ecu":%s}' % (
            _f.METHOD_NAMES[fb[k]], fb[k + 1], b'"0x%X"' % client.ecu_id(fb[k + 2]) if fb[k + 2] != 0xFF else b"null")
        for k in range(0, 3 * client.n_fallbacks, 3))
    # in pieces the Writer sends as they come (a stranger claiming every PID
    # makes the list of PIDs alone a kilobyte)
    w.raw(b'{"vin":%s,"supported_pids":[%s],' % (vin, pids))
    w.raw(b'"requests":%d,"responses":%d,"timeouts":%d,"negative":%d,"engine_ecu":%s,"ecus":[%s],' % (
        client.requests, client.responses, client.timeouts, client.negative, engine, ecus))
    w.raw(b'"fuel_fallbacks":[%s]}' % fallbacks)
