"""Fleet scaling: drives per second of the same matrix on a local Dask
cluster of one worker, then of two, and the efficiency of the second
(2-worker rate / (2 x 1-worker rate)); the drives go through the same job
array as ``keidrive fleet``, minus the database."""

from __future__ import annotations

from .. import sim
from ..drive.spec import DriveSpec
from ..fleet import cluster, tasks

PROFILES = ("jp-expressway", "us-minitruck-55")


def fleet_figures(cycle: str = "wltc-jp", runtime: str = "micropython") -> dict:
    specs = [tasks.simulated(DriveSpec(vehicle, cycle, profile, runtime=runtime))
             for vehicle in sim.list_vehicles() for profile in PROFILES]
    rates, failed = {}, 0
    for workers in (1, 2):
        rows: list = []
        with cluster.open_client(workers=workers) as client:
            wall = cluster.run_all(client, specs, lambda index, row, rows=rows: rows.append(row))
        done = sum(row["ok"] for row in rows)
        failed += len(rows) - done
        rates[workers] = {"wall_s": round(wall, 3), "drives_per_s": round(done / wall, 3)}
    return {
        "cycle": sim.load_cycle(cycle).name,
        "drives": len(specs),
        "failed": failed,
        "workers_1": rates[1],
        "workers_2": rates[2],
        "efficiency": round(rates[2]["drives_per_s"] / (2 * rates[1]["drives_per_s"]), 3),
    }
