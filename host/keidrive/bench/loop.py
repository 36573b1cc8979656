"""Firmware in the loop, end to end: a whole drive through the simulator,
a private bus (in lockstep, straight into the firmware's stdin) and the
firmware in MicroPython (``keidrive.run``, as ``keidrive run`` drives it),
against the drive's own duration."""

from __future__ import annotations

from ..drive.simulated import run
from ..drive.spec import DriveSpec


def loop_figures(vehicle: str = "nbox-turbo", cycle: str = "wltc-jp", runtime: str = "micropython") -> dict:
    trip = run(DriveSpec(vehicle, cycle, "jp-expressway", runtime=runtime))
    duration = trip.truth["duration_s"]
    return {
        "vehicle": vehicle,
        "cycle": cycle,
        "runtime": runtime,
        "cycle_duration_s": duration,
        "frames": trip.frames,
        "wall_s": round(trip.wall_s, 3),
        "realtime_factor": round(duration / trip.wall_s, 1),
        "target_realtime_factor": 50,
    }
