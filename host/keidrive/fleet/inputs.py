"""The drives of a fleet run: its logs (globs expanded) and its matrix of
vehicles x cycles x profiles, each checked here so a typo is one clear
error before any cluster starts, not a run of failed drives."""

from __future__ import annotations

import glob
from pathlib import Path

from ..drive.spec import DEFAULT_CYCLE, DEFAULT_RUNTIME, DEFAULT_VEHICLE, DriveSpec
from ..errors import KeidriveError
from . import tasks


def log_paths(patterns: list[str]) -> list[str]:
    """Absolute paths of the logs ``patterns`` name, in order; a glob that
    matches nothing or a missing file is an error."""
    paths = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matched = sorted(glob.glob(pattern))
            if not matched:
                raise KeidriveError(f"no log matches {pattern}")
        else:
            matched = [pattern]
        for path in matched:
            if not Path(path).is_file():
                raise KeidriveError(f"{path}: no such log file")
            paths.append(str(Path(path).resolve()))
    return paths


def drive_tasks(logs: list[str], vehicles: list[str] | None, cycles: list[str] | None, profiles: list[str], *,
                dbc: str | None = None, roles: str | None = None, obd: bool = False,
                runtime: str = DEFAULT_RUNTIME, check_runtime: bool = True) -> list[dict]:
    """Every drive, the logs' replays first, then the matrix (a side not
    given takes keidrive run's default); ``dbc`` and ``roles`` go to every
    drive, ``obd`` to the simulated ones. ``check_runtime``: the runtime is
    this machine's (a local cluster); a remote cluster's is checked per drive."""
    from .. import sim
    from ..drive.spec import resolve_dbc
    from ..fwconfig import require_profile

    for profile in profiles:
        require_profile(profile)
    dbc, roles = _absolute(dbc), _absolute(roles)
    resolve_dbc(dbc, roles)
    options = " ".join(word for flag, value in (("--dbc", dbc), ("--roles", roles)) if value for word in (flag, value))
    found = log_paths(logs)
    drives = [tasks.replayed(log, profile, runtime, dbc, roles, options) for log in found for profile in profiles]
    if vehicles is not None or cycles is not None:
        vehicles = [_absolute(name) for name in vehicles or [DEFAULT_VEHICLE]]
        cycles = [_absolute(name) for name in cycles or [DEFAULT_CYCLE]]
        for vehicle in vehicles:
            sim.load_vehicle(vehicle)
        for cycle in cycles:
            sim.load_cycle(cycle)
        run_options = " ".join(filter(None, (options, "--obd" if obd else "")))
        drives += [tasks.simulated(DriveSpec(vehicle, cycle, profile, dbc=dbc, roles=roles, obd=obd, runtime=runtime),
                                   run_options)
                   for vehicle in vehicles for cycle in cycles for profile in profiles]
    if not drives:
        raise KeidriveError("nothing to drive: give drive logs (or globs) and/or vehicles / cycles")
    if obd and not any(drive["kind"] == "run" for drive in drives):
        raise KeidriveError(": no drive here takes it (keidrive replay does not)", option="obd")
    if check_runtime:
        from ..drive.harness import firmware_command

        firmware_command(runtime)
    return drives


def _absolute(name: str | None) -> str | None:
    """A file by its absolute path: a worker does not run in this directory.
    A name (a preset, a bundled cycle or DBC) stays a name."""
    if name is None:
        return None
    return str(Path(name).resolve()) if Path(name).is_file() else name
