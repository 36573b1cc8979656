"""The firmware as an OBD-II tester against the simulated engine ECU, in lockstep.

On the OBD-II port the firmware hears only what it asks for, so the traffic
cannot be computed ahead: each reply depends on a request the firmware
decides to send. ``drive_obd`` runs both on one virtual clock. The firmware
(``main.py --socket``, virtual clock) connects to a socket of this process;
at every barrier this side sends the ECU's frames due by then, stamped with
their bus times, and a SYNC control record (``record.CONTROL_SYNC``). The
firmware advances its clock to the SYNC (its 10 Hz ticks run and send their
requests), then echoes the SYNC after everything it sent. The ECU hears those
frames at the SYNC's time and schedules its replies (``EngineEcu``: the
state at that moment, a 5-30 ms delay, can-isotp for multi-frame replies).

Barriers fall on the firmware's 10 Hz ticks, at each reply the ECU has due
and, while a multi-frame reply is in flight, every millisecond: the bus
timing the firmware sees is the ECU's, up to a frame time (250 us at
500 kbit/s). A run is reproducible bit for bit (the ECU's delays come from a
seeded generator).
"""

from __future__ import annotations

import os
import socket
import tempfile

import numpy as np

from ..errors import KeidriveError
from ..io import record
from ..sim.obd_ecu import EngineEcu, HostileEcu, IsoTpEcu
from .harness import FirmwareProcess, FirmwareReport, firmware_config

TICK_S = 0.1
FRAME_S = 0.00025      # one 8-byte frame at 500 kbit/s, stuffing included
CF_POLL_S = 0.001      # barrier spacing while a multi-frame reply is sent
CONNECT_TIMEOUT_S = 30.0
SILENCE_S = 60.0
EPOCH_S = 1.0       # a firmware that does not echo a SYNC for this long is stuck


def drive_obd(result, *, profile: str = "jp-expressway", config: dict | None = None,
              runtime: str = "micropython", faults: dict | None = None, seed: int = 0,
              timeout: float = 3600.0, on_event=None, extended: bool = False,
              tree=None, vehicle_module: str | None = None, bus_frames: dict | None = None,
              second_ecu: str | None = None) -> tuple[FirmwareReport, dict]:
    """The firmware polling ``result``'s engine ECU for the whole drive
    (``extended``: an ECU on 29-bit identifiers): its report, and figures
    (``frames`` on the bus, ``barriers``). ``bus_frames`` (frame arrays in drive
    time): other traffic on the same bus, for the firmware tree ``tree`` whose
    ``vehicle_module`` decodes it (keidrive.drive.byodbc). ``second_ecu``: a
    hostile second ECU on the port (``sim.obd_ecu.HOSTILE``)."""
    ecu = EngineEcu(result, seed=seed, faults=faults, extended=extended)
    others = [HostileEcu(result, second_ecu, extended=extended, seed=seed + 1)] if second_ecu else []
    cfg = firmware_config(result.vehicle.name, profile, {"obd": True, **(config or {})})
    if vehicle_module is not None:
        cfg["vehicle"] = vehicle_module
    bus = record.from_frames(bus_frames) if bus_frames is not None else None
    return drive_ecu(ecu, cfg, runtime=runtime, seed=seed, timeout=timeout, on_event=on_event, tree=tree, bus=bus,
                     others=others)


def drive_ecu(ecu: IsoTpEcu, cfg: dict, *, runtime: str = "micropython", seed: int = 0, timeout: float = 3600.0,
              on_event=None, tree=None, bus=None, others: list | None = None) -> tuple[FirmwareReport, dict]:
    """The firmware (config ``cfg``, OBD-II on) polling ``ecu`` from its first
    span's start to its last one's end, in lockstep: its report, and figures
    (``frames`` on the bus, ``barriers``). ``bus``: records of other traffic
    on the same bus, in drive time; ``others``: more ECUs on the port."""
    ecus = [ecu] + (others or [])
    bus = np.zeros(0, record.DTYPE) if bus is None else bus.copy()
    bus["timestamp_us"] += np.uint64(round(EPOCH_S * 1e6))  # on the lockstep's clock (_us)
    # a unit is plugged in at no particular moment: its 10 Hz ticks keep a
    # phase of their own to the drive (the simulator's trace changes slope
    # on whole seconds; ticks locked to them would sample in step with it)
    start = float(ecu.seg[0][0]) - float(np.random.default_rng(seed).uniform(0.0, TICK_S))
    end = float(ecu.seg[-1][1]) + 1.0
    with tempfile.TemporaryDirectory(prefix="keidrive-obd-") as tmp:
        path = os.path.join(tmp, "obd.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        server.settimeout(CONNECT_TIMEOUT_S)
        firmware = FirmwareProcess(cfg, runtime=runtime, socket_path=path, clock="virtual", on_event=on_event,
                                   tree=tree)
        try:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                firmware.kill()
                raise KeidriveError(firmware.wait(1).failure()) from None
            conn.settimeout(SILENCE_S)
            figures = _lockstep(conn, ecus, start, end, firmware, bus)
            conn.sendall(record.control(record.CONTROL_END_OF_DRIVE))
            report = firmware.wait(timeout)
            conn.close()
        finally:
            firmware.kill()
            server.close()
    return report, figures


def _lockstep(conn, ecus: list, start: float, end: float, firmware, bus) -> dict:
    frames = 0
    bus_next = 0  # the first of ``bus`` not yet sent
    barriers = 0
    pending = bytearray()
    next_tick = start
    t = start
    while t <= end:
        due = min((d for d in (e.next_due() for e in ecus) if d is not None), default=None)
        if any(e.busy for e in ecus):
            due = t + CF_POLL_S
        barrier = next_tick if due is None or due >= next_tick else max(due, t)
        out: list = []
        for ecu in ecus:
            ecu.process(barrier, lambda can_id, ext, data, out=out: out.append((can_id, ext, data)))
        chunk = bytearray()
        stamp = barrier
        bus_due = int(np.searchsorted(bus["timestamp_us"], _us(barrier), side="right"))
        chunk += bus[bus_next:bus_due].tobytes()  # the bus's own traffic up to the barrier, in time order
        frames += bus_due - bus_next
        bus_next = bus_due
        for can_id, ext, data in out:
            chunk += record.pack(_us(stamp), can_id, record.FLAG_EXTENDED if ext else 0, len(data), data)
            stamp += FRAME_S
        frames += len(out)
        chunk += record.pack(_us(stamp), record.CONTROL_SYNC, record.FLAG_CONTROL, 0, b"")
        try:
            conn.sendall(chunk)
            sent, pending = _until_sync(conn, pending)
        except (TimeoutError, OSError):
            raise KeidriveError(firmware.wait(1).failure()) from None
        for can_id, ext, data in sent:
            frames += 1
            for ecu in ecus:
                if ecu.hears(can_id, ext):
                    ecu.on_frame(can_id, data, stamp)
        barriers += 1
        if barrier >= next_tick - 1e-9:
            next_tick += TICK_S
        t = stamp + 1e-7
    return {"frames": frames, "barriers": barriers}


def _until_sync(conn, pending: bytearray):
    """Frames the firmware sent before echoing the SYNC: [(id, ext, data)]."""
    frames = []
    while True:
        while len(pending) >= record.SIZE:
            rec = bytes(pending[: record.SIZE])
            del pending[: record.SIZE]
            _ts, can_id, flags, _dlc, data = record.unpack(rec)
            if flags & record.FLAG_CONTROL:
                if can_id == record.CONTROL_SYNC:
                    return frames, pending
                continue
            frames.append((can_id, bool(flags & record.FLAG_EXTENDED), data))
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("the firmware closed the connection")
        pending += chunk


def _us(t: float) -> int:
    """Record timestamp of drive time t: counted from EPOCH_S before the
    drive, so the unit's clock may start before the car does."""
    return round((t + EPOCH_S) * 1e6)

