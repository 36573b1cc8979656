"""The OBD-II client in the firmware loop and in its telemetry.

``attach(fw, cfg)`` creates the client (keifw/obd.py), hands it the reply
frames through the loop's listener and a call per 10 Hz tick, and writes its
``signal`` events (``OBD-II`` lost / restored); lines.py adds ``OBD-II`` to
a status line's ``missing`` while it is lost and ``write_trip`` to the trip
line: ``fuel_method`` and ``obd`` {vin, supported_pids, requests, responses,
timeouts, negative}.
"""

from . import obdfuel as _f
from .obd import Client

T_SIGNAL = b'"type":"signal"'
NAME = b"OBD-II"


def attach(fw, cfg):
    """The client on firmware ``fw``; ``fw.obd`` from then on."""
    client = Client(cfg, fw.econ, fw.port)
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
    object is formatted here, which allocates)."""
    w.kstr(b'"fuel_method":', _f.METHOD_NAMES[client.method])
    w.key(b'"obd":')
    vin = b'"' + bytes(client.vin) + b'"' if client.vin_len == 17 else b"null"
    pids = b",".join(b"%d" % pid for pid in range(1, 256) if client.supports(pid))
    w.raw(b'{"vin":%s,"supported_pids":[%s],"requests":%d,"responses":%d,"timeouts":%d,"negative":%d}' % (
        vin, pids, client.requests, client.responses, client.timeouts, client.negative))
