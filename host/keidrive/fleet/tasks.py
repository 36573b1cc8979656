"""One fleet drive: its description (a plain dict, cheap to ship to a
worker) and the function a worker runs for it.

A drive goes through the library a single ``keidrive run`` (``keidrive.run``)
or ``keidrive replay`` (``keidrive.replay``) goes through, with the same
settings, so a fleet trip equals the single command's trip exactly. Each
drive runs its firmware in a process of its own on a private bus (in
lockstep, its records straight into the firmware's stdin: no hub); nothing
is shared between drives.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections import Counter
from functools import cache
from pathlib import Path

from ..drive.spec import DriveSpec
from ..errors import KeidriveError

ATTEMPTS = 2  # a failed drive is tried once more before it is reported


def simulated(spec: DriveSpec, options: str = "") -> dict:
    """A simulated drive (as ``keidrive run`` drives it); ``options``: the
    flags beyond vehicle, cycle, profile and runtime, as the command spells them."""
    return {"kind": "run", "input": f"{spec.vehicle}/{spec.cycle}", "vehicle": spec.vehicle, "cycle": spec.cycle,
            "profile": spec.profile, "runtime": spec.runtime, "options": options, "spec": spec}


def replayed(log: str, profile: str, runtime: str, dbc: str | None = None, roles: str | None = None,
             options: str = "") -> dict:
    """A replay of the drive log ``log`` (as ``keidrive replay`` replays it)."""
    return {"kind": "replay", "input": log, "vehicle": None, "cycle": None, "profile": profile,
            "runtime": runtime, "options": options, "dbc": dbc, "roles": roles}


def drive_once(task: dict) -> dict:
    """Run the drive; what its single command's ``--json`` would report
    (truth, firmware, frames) plus the names it resolved."""
    from ..drive.replayed import LogReplay
    from ..drive.simulated import SimulatedDrive

    if task["kind"] == "run":
        drive = SimulatedDrive(task["spec"])
        trip = drive.run()
        return {"truth": trip.truth, "firmware": trip.firmware, "trip": trip.summary, "frames": trip.frames,
                "vehicle": drive.vehicle.name, "cycle": drive.cycle.name}
    trip = LogReplay(task["input"], profile=task["profile"], dbc=task["dbc"], roles=task["roles"],
                     runtime=task["runtime"]).run()  # a cut log replays up to the cut, as replay does
    return {"truth": None, "firmware": trip.firmware, "trip": trip.summary, "frames": trip.frames,
            "vehicle": trip.log["dbc"], "cycle": None}


def run_drive(spec: dict) -> dict:
    """The task a worker runs: the drive, tried twice at most; never raises.
    The result is the row for the ``trips`` table and its warning events.
    The drive keeps to one core (``harness.one_core``): a worker per core
    then scales with the cores."""
    from ..drive.harness import one_core

    started = time.perf_counter()
    outcome, error = None, None
    attempts = 0
    while outcome is None and attempts < ATTEMPTS:
        attempts += 1
        try:
            with one_core():
                outcome = drive_once(spec)
        except KeidriveError as failure:
            error = str(failure)
        except Exception as failure:  # noqa: BLE001  a bug must cost one drive, not the run; its reason is kept
            error = f"{type(failure).__name__}: {failure}"
    return trip_row(spec, outcome, error, attempts, time.perf_counter() - started, worker_name())


def failed_row(spec: dict, error: str) -> dict:
    """The row of a drive whose worker never returned (it died, or the
    cluster went away)."""
    return trip_row(spec, None, error, ATTEMPTS, None, None)


def trip_row(spec: dict, outcome: dict | None, error: str | None, attempts: int, wall_s, worker) -> dict:
    firmware = outcome["firmware"] if outcome else {}
    trip = outcome["trip"] if outcome else {}
    truth = (outcome or {}).get("truth") or {}
    warnings = firmware.get("warnings", [])
    return {
        "input": spec["input"],
        "kind": spec["kind"],
        "vehicle": outcome["vehicle"] if outcome else spec["vehicle"],
        "cycle": outcome["cycle"] if outcome else spec["cycle"],
        "profile": spec["profile"],
        "runtime": spec["runtime"],
        "options": spec["options"],
        "firmware_version": firmware_version() if worker else None,
        "ok": outcome is not None,
        "error": None if outcome else error,
        "attempts": attempts,
        "frames": outcome["frames"] if outcome else None,
        "distance_km": firmware.get("distance_km"),
        "fuel_l": firmware.get("fuel_l"),
        "energy_kwh": firmware.get("energy_kwh"),
        "km_per_l": firmware.get("km_per_l"),
        "wh_per_km": trip.get("wh_per_km"),
        "eco_score": firmware.get("eco_score"),
        "warnings": len(warnings) if outcome else None,
        "warnings_by_kind": dict(Counter(w["kind"] for w in warnings)),
        "truth_distance_km": truth.get("distance_km"),
        "truth_fuel_l": truth.get("fuel_l"),
        "truth_energy_kwh": truth.get("energy_kwh"),
        "truth_km_per_l": truth.get("km_per_l"),
        "wall_s": None if wall_s is None else round(wall_s, 3),
        "worker": worker,
        **quality_columns(trip.get("quality")),
        "warning_events": warnings,
    }


def quality_columns(quality: dict | None) -> dict:
    """The ``trips`` table's data-quality columns from a trip's ``quality``
    (all null for a drive that failed, or a firmware that reports none)."""
    q = quality or {}
    return {
        "fallback_s": q.get("fallback_s"),
        "fallback_km": q.get("fallback_km"),
        "untrusted_s": q.get("untrusted_s"),
        "rejected_frames": q.get("rejected"),
        "faulty_sources": {f["source"]: f["reason"] for f in q["faulty"]} if "faulty" in q else None,
        "not_measured": q.get("not_measured"),
    }


def worker_name() -> str:
    """The Dask worker running this drive (its address), else this host."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return socket.gethostname()


@cache
def firmware_version() -> str:
    """``git describe`` of the checkout whose firmware runs here, else the
    package version (an installed wheel)."""
    from .. import __version__
    from ..paths import firmware_dir

    tree = firmware_dir()
    try:
        top = subprocess.run(["git", "-C", str(tree), "rev-parse", "--show-toplevel"],
                             check=False, capture_output=True, text=True, timeout=10)
        # Only the checkout the firmware belongs to, never a repository
        # that merely contains an installed package.
        if top.returncode == 0 and tree.parent.resolve() == Path(top.stdout.strip()).resolve():
            described = subprocess.run(["git", "-C", str(tree), "describe", "--tags", "--always", "--dirty"],
                                       check=False, capture_output=True, text=True, timeout=10)
            if described.returncode == 0 and described.stdout.strip():
                return described.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__

