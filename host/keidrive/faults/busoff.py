"""Bus-off recovery: the firmware's board loop (``app.run_port`` with
``MachineCANPort``) in MicroPython against a ``machine.CAN`` stand-in that
goes bus-off, and the restarts it makes."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from ..errors import KeidriveError
from ..io import record
from .traffic import US

# ---------------------------------------------------------------------------
# bus-off: the board loop against a machine.CAN that goes bus-off
# ---------------------------------------------------------------------------

_BUSOFF_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
FRAMES = sys.argv[2]
OFF_AT = int(sys.argv[3])      # ms after start: the controller goes bus-off
OFF_FOR = int(sys.argv[4])     # ms it stays bus-off (restart() fails before)
TOTAL = int(sys.argv[5])       # ms of run
WRAP = int(sys.argv[6])        # start the firmware clock this many ms before its 30-bit wrap
CONFIG_ID = int(sys.argv[8])   # the firmware config schema's default controller id
OPEN_ID = int(sys.argv[9])     # the controller the port opens

class _CAN:
    # the upstream machine.CAN API, the parts MachineCANPort uses
    MODE_NORMAL = 0
    MODE_SILENT = 3
    STATE_STOPPED = 0
    STATE_ACTIVE = 1
    STATE_WARNING = 2
    STATE_PASSIVE = 3
    STATE_BUS_OFF = 4
    FLAG_RTR = 1
    FLAG_EXT_ID = 2
    def __init__(self, id, bitrate, mode=0):
        # upstream extmod/machine_can.c numbers controllers from 1; a
        # firmware whose config still says 0 is from before it followed that
        if not 1 <= id <= 3 and not (id == 0 and CONFIG_ID == 0):
            raise ValueError("CAN(%d): no such controller (they are numbered from 1)" % id)
        self.data = open(FRAMES, "rb").read()
        self.n = len(self.data) // 24
        self.i = 0
        self.t0 = time.ticks_ms()
        self.off = False
        self.restarts = []
        self.dropped = 0
    def set_filters(self, f):
        pass
    def _now(self):
        return time.ticks_diff(time.ticks_ms(), self.t0)
    def state(self):
        now = self._now()
        if not self.off and OFF_AT <= now < OFF_AT + OFF_FOR:
            self.off = True
        return self.STATE_BUS_OFF if self.off else self.STATE_ACTIVE
    def restart(self):
        now = self._now()
        self.restarts.append(now)
        if now >= OFF_AT + OFF_FOR:
            self.off = False
    def recv(self, lst):
        now = self._now()
        d = self.data
        while self.i < self.n:
            o = self.i * 24
            t = (d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (d[o + 3] << 24)) // 1000
            if t > now:
                return None
            self.i += 1
            if self.off or (OFF_AT <= now < OFF_AT + OFF_FOR):
                self.dropped += 1  # a bus-off controller receives nothing
                continue
            lst[0] = d[o + 8] | (d[o + 9] << 8) | (d[o + 10] << 16) | (d[o + 11] << 24)
            n = d[o + 13]
            lst[1] = memoryview(d)[o + 16:o + 16 + n]
            lst[2] = 0
            lst[3] = 0
            return lst
        return None
    def send(self, *a):
        return None

class machine:
    CAN = _CAN
sys.modules["machine"] = machine

from keifw import app, canport, compat
if WRAP:
    base = (0x40000000 - WRAP * 1000 - compat._ticks_us()) & 0x3FFFFFFF
    def shifted():
        return (compat._ticks_us() + base) & 0x3FFFFFFF
    canport.now_us = shifted
    app.now_us = shifted
gen = app.vehicle_module(sys.argv[7])
port = canport.MachineCANPort(gen, OPEN_ID, 500000, False)
fw, cfg = app.build(cfg_obj={"vehicle": sys.argv[7], "profile": "jp-expressway"}, port=port)
t0 = time.ticks_ms()
app.run_port(fw, port, stop=lambda: time.ticks_diff(time.ticks_ms(), t0) >= TOTAL)
fw.status()
c = port.can
print('{"type":"busoff","restarts_ms":[%s],"port_restarts":%d,"dropped":%d,"delivered":%d,"frames":%d}' % (
    ",".join(str(x) for x in c.restarts), port.restarts, c.dropped, c.i, fw.frames))
"""


def busoff_recovery(vehicle: str = "nbox-turbo", cycle: str = "hwfet", *, off_at_s: float = 1.0,
                    off_for_s: float = 1.2, total_s: float = 4.0, wrap_ms: int = 0,
                    micropython: str | None = None, can_id: int | None = None) -> dict:
    """The firmware's board loop (``app.run_port`` + ``MachineCANPort``) in
    MicroPython, fed a drive at real pace by a ``machine.CAN`` stand-in that
    goes bus-off at ``off_at_s`` for ``off_for_s`` (``restart()`` only brings
    it back after that). ``wrap_ms``: start the firmware clock that long
    before its 30-bit wrap, so a back-off spans it. ``can_id``: the controller
    the port opens (default: the firmware config's); the stand-in numbers
    them from 1 as upstream does, and takes 0 only from a config that still
    defaults to it.

    Returns the restart times (ms after start), the back-off gaps between
    them, whether the port came back (status ``bus`` active again after
    bus_off) and the frames processed after recovery.
    """
    from .. import sim
    from ..drive.harness import firmware_config
    from ..fwconfig import schema_module
    from ..paths import firmware_dir
    from ..runtime import micropython_command

    result = sim.simulate(vehicle, cycle)
    recs = record.from_frames(result.frames)
    recs = recs[recs["timestamp_us"] < int((total_s + 1) * US)]
    module = firmware_config(vehicle)["vehicle"]
    config_id = schema_module().DEFAULTS["can_id"]
    with tempfile.TemporaryDirectory(prefix="keidrive-busoff-") as tmp:
        frames = Path(tmp) / "frames.bin"
        frames.write_bytes(recs.tobytes())
        script = Path(tmp) / "busoff.py"
        script.write_text(_BUSOFF_SCRIPT)
        cmd = [micropython or micropython_command(), str(script), str(firmware_dir()), str(frames),
               str(int(off_at_s * 1000)), str(int(off_for_s * 1000)), str(int(total_s * 1000)), str(int(wrap_ms)),
               module, str(config_id), str(config_id if can_id is None else can_id)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=total_s + 60)
    if proc.returncode != 0:
        raise KeidriveError(f"bus-off run failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = next(e for e in events if e.get("type") == "busoff")
    states = [e["bus"] for e in events if e.get("type") == "status"]
    restarts = summary["restarts_ms"]
    off_end = (off_at_s + off_for_s) * 1000
    return {
        "restarts_ms": restarts,
        "backoff_ms": [b - a for a, b in zip(restarts, restarts[1:])],
        "bus_states": states,
        "went_bus_off": "bus_off" in states,
        "recovered": "bus_off" in states and states[-1] == "active",
        "recovered_after_ms": next((r - off_end for r in restarts if r >= off_end), None),
        "frames": summary["frames"],
        "dropped_while_off": summary["dropped"],
        "errors": [e for e in events if e.get("type") == "error"],
    }
