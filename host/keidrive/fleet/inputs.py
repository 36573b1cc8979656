"""The drives of a ``keidrive fleet`` command line: its logs (globs
expanded) and its matrix of vehicles x cycles x profiles, each checked here
so a typo is one clear error before any cluster starts, not a run of
failed drives."""

from __future__ import annotations

import glob
from pathlib import Path

from ..errors import KeidriveError
from . import tasks

# Defaults of `keidrive run` for a matrix that names only one side.
DEFAULT_VEHICLE = "nbox-turbo"
DEFAULT_CYCLE = "wltc-jp"


def names(text: str | None, default: str | None = None) -> list[str]:
    if text is None:
        return [default] if default else []
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    if not chosen:
        raise KeidriveError(f"empty list {text!r}")
    return chosen


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


def drive_specs(args) -> list[dict]:
    """Every drive of the command line, logs first, then the matrix."""
    from .. import sim
    from ..fwconfig import require_valid

    profiles = names(args.profiles)
    for profile in profiles:
        require_valid({"profile": profile})
    specs = [tasks.replayed(log, profile, args.runtime, passthrough(args, "replay"))
             for log in log_paths(args.inputs) for profile in profiles]
    if args.vehicles is not None or args.cycles is not None:
        vehicles = [_absolute(name) for name in names(args.vehicles, DEFAULT_VEHICLE)]
        cycles = [_absolute(name) for name in names(args.cycles, DEFAULT_CYCLE)]
        for vehicle in vehicles:
            sim.load_vehicle(vehicle)
        for cycle in cycles:
            sim.load_cycle(cycle)
        specs += [tasks.simulated(vehicle, cycle, profile, args.runtime, passthrough(args, "run"))
                  for vehicle in vehicles for cycle in cycles for profile in profiles]
    if not specs:
        raise KeidriveError("nothing to drive: give drive logs (or globs) and/or --vehicles / --cycles")
    kinds = {spec["kind"] for spec in specs}
    for option in given_options(args):
        if not any(takes(kind, option) for kind in kinds):
            raise KeidriveError(f"{option[0]}: no drive here takes it ("
                                + "; ".join(f"keidrive {kind} does not" for kind in sorted(kinds)) + ")")
    for spec in {spec["kind"]: spec for spec in specs}.values():
        tasks.command_args(spec)  # an option that command does not take fails here, once
    if args.scheduler is None and args.runtime:
        from ..drive.harness import firmware_command

        firmware_command(args.runtime)  # the local workers' runtime; a remote cluster's is checked per drive
    return specs


def _absolute(name: str) -> str:
    """A vehicle TOML or cycle CSV by its absolute path: a worker does not
    run in this directory. A preset name stays a name."""
    return str(Path(name).resolve()) if Path(name).is_file() else name


def given_options(args) -> list[list[str]]:
    """The drive options of the command line, as the single commands spell them."""
    options = []
    if args.dbc:
        options.append(["--dbc", _absolute(args.dbc)])
    if args.roles:
        options.append(["--roles", _absolute(args.roles)])
    if args.obd:
        options.append(["--obd"])
    return options


def takes(kind: str, option: list[str]) -> bool:
    """Whether `keidrive KIND` takes ``option`` (its own parser says)."""
    if kind == "run":
        probe = tasks.simulated(DEFAULT_VEHICLE, DEFAULT_CYCLE, "jp-expressway", "micropython", option)
    else:
        probe = tasks.replayed("LOG", "jp-expressway", "micropython", option)
    try:
        tasks.command_args(probe)
    except KeidriveError:
        return False
    return True


def passthrough(args, kind: str) -> list[str]:
    """The options each drive of ``kind`` (run, replay) gets: those its
    single command takes (--obd and --roles go to simulated drives, --dbc to
    replays and, where `keidrive run` takes it, to simulated drives too)."""
    return [word for option in given_options(args) if takes(kind, option) for word in option]
