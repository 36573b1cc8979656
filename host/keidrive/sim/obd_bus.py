"""The simulated engine ECU on a python-can bus, at recorded pace.

``serve(result, bus)`` answers OBD-II requests as they arrive, from the
state of the drive at that moment: drive time runs with the wall clock
(times ``speed``) from the call, and the ECU is silent before and after the
drive as an engine that is off. A tester on the bus (the firmware on a
board, ``keidrive run --realtime`` ... or python-OBD through an adapter)
polls it as it would a car.
"""

from __future__ import annotations

import time

from .obd_ecu import EngineEcu

IDLE_WAIT_S = 0.01
CF_WAIT_S = 0.001  # while a multi-frame reply goes out


def serve(result, bus, *, speed: float = 1.0, seed: int = 0, faults: dict | None = None, stop=None) -> dict:
    """Answer until the drive is over (or ``stop()`` is true): figures
    ``{"requests", "replies", "duration_s"}``."""
    import can

    ecu = EngineEcu(result, seed=seed, faults=faults)
    end = ecu.seg[-1][1]
    start = time.monotonic()
    heard = 0

    def now():
        return (time.monotonic() - start) * speed

    def send(can_id, extended, data):
        bus.send(can.Message(arbitration_id=can_id, is_extended_id=extended, data=data))

    while now() <= end and not (stop is not None and stop()):
        due = ecu.next_due()
        wait = CF_WAIT_S if ecu.busy else IDLE_WAIT_S
        if due is not None:
            wait = min(wait, max(0.0, (due - now()) / speed))
        msg = bus.recv(timeout=wait)
        t = now()
        if msg is not None and not msg.is_error_frame and not msg.is_remote_frame \
                and ecu.hears(msg.arbitration_id, msg.is_extended_id):
            heard += 1
            ecu.on_frame(msg.arbitration_id, bytes(msg.data), t)
        ecu.process(t, send)
    return {"requests": heard, "replies": ecu.answered, "duration_s": round(now(), 3)}
