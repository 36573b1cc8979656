"""Firmware in the loop, end to end: a whole drive through the simulator,
the keidrive virtual bus and the firmware in MicroPython, against the
drive's own duration."""

from __future__ import annotations

import time

from .. import sim
from ..drive.harness import feed_over_bus, firmware_config
from ..io import record


def loop_figures(vehicle: str = "nbox-turbo", cycle: str = "wltc-jp", runtime: str = "micropython") -> dict:
    started = time.perf_counter()
    result = sim.simulate(vehicle, cycle)
    records = record.from_frames(result.frames)
    report, figures = feed_over_bus(records, firmware_config(vehicle, "jp-expressway"), runtime=runtime)
    wall = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(report.failure())
    return {
        "vehicle": vehicle,
        "cycle": cycle,
        "runtime": runtime,
        "cycle_duration_s": result.truth["duration_s"],
        "frames": len(records),
        "wall_s": round(wall, 3),
        "realtime_factor": round(result.truth["duration_s"] / wall, 1),
        "target_realtime_factor": 50,
    }
