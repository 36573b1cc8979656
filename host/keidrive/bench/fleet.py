"""Fleet scaling: drives per second of the same matrix on a local Dask
cluster of one worker, then of two, and the efficiency of the second
(2-worker rate / (2 x 1-worker rate)); the drives go through the same job
array as ``keidrive fleet``, minus the database. Beside each rate: the load
average before it, and the distribution of a drive's time on a worker (what
a larger cluster's time follows from, docs/fleet.md)."""

from __future__ import annotations

import os

import numpy as np

from .. import sim
from ..drive.spec import DriveSpec
from ..fleet import cluster, tasks

PROFILES = ("jp-expressway", "us-minitruck-55")
# The matrix this many times over: with a handful of drives the last one's
# length decides how much of the time a second worker idles.
ROUNDS = 4


def _distribution(seconds: list) -> dict:
    times = np.asarray(seconds, float)
    return {"mean_s": round(float(times.mean()), 3), "p10_s": round(float(np.percentile(times, 10)), 3),
            "median_s": round(float(np.median(times)), 3), "p90_s": round(float(np.percentile(times, 90)), 3),
            "max_s": round(float(times.max()), 3)}


def fleet_figures(cycle: str = "wltc-jp", runtime: str = "micropython") -> dict:
    specs = [tasks.simulated(DriveSpec(vehicle, cycle, profile, runtime=runtime))
             for _ in range(ROUNDS) for vehicle in sim.list_vehicles() for profile in PROFILES]
    rates, failed = {}, 0
    for workers in (1, 2):
        rows: list = []
        with cluster.open_client(workers=workers) as client:
            load = os.getloadavg()[0]
            wall = cluster.run_all(client, specs, lambda index, row, rows=rows: rows.append(row))
        done = sum(row["ok"] for row in rows)
        failed += len(rows) - done
        rates[workers] = {
            "wall_s": round(wall, 3), "drives_per_s": round(done / wall, 3), "load_avg_1min": round(load, 2),
            "drive_time": _distribution([row["wall_s"] for row in rows if row["ok"]] or [0.0]),
        }
    return {
        "cycle": sim.load_cycle(cycle).name,
        "drives": len(specs),
        "rounds": ROUNDS,
        "failed": failed,
        "workers_1": rates[1],
        "workers_2": rates[2],
        "efficiency": round(rates[2]["drives_per_s"] / (2 * rates[1]["drives_per_s"]), 3),
    }
