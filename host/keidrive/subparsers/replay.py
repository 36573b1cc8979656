"""keidrive replay: a recorded drive log into the firmware, or onto a bus."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def add_subparser(subparsers) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a drive log (any format python-can reads) into the firmware or onto a bus",
        description=(
            "Replay a recorded drive log into the firmware in the loop (default) and report what it saw, "
            "or play it onto a real bus (--bus socketcan:can0, --bus slcan:/dev/ttyACM0, ...) at recorded pace."
        ),
    )
    parser.add_argument("log", metavar="LOG", help="drive log: .asc .blf .log (candump) .trc .csv .mf4 ...")
    parser.add_argument(
        "--dbc", metavar="NAME|FILE.dbc",
        help="vehicle DBC of the log (kei_turbo_660, kei_hybrid_660, kei_ev; default: the one whose "
        "messages the log carries), or your car's DBC file with --roles",
    )
    parser.add_argument(
        "--roles", type=Path, metavar="ROLES.toml",
        help="the roles file for a --dbc FILE: the firmware runs that DBC compiled with it",
    )
    parser.add_argument("--profile", default="jp-expressway", help="speed profile (default: jp-expressway)")
    parser.add_argument(
        "--min-explained", type=float, metavar="SHARE",
        help="refuse a log the vehicle DBC explains less of than this share of frames (default 0.5: below it "
        "the log is of another car or the DBC is wrong; lower it for a bus that also carries other traffic)",
    )
    parser.add_argument("--bus", metavar="INTERFACE:CHANNEL[@BITRATE]", help="play the log onto this bus")
    parser.add_argument(
        "--no-firmware", action="store_true", help="with --bus: only play the log, attach no firmware",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=float, metavar="N",
        help="N times the recorded pace (default: recorded pace onto a bus, as fast as possible into the firmware)",
    )
    pace.add_argument("--fast", action="store_true", help="as fast as possible")
    parser.add_argument("--runtime", default="micropython", metavar="micropython|cpython|unix32|qemu|qemu-mpy|PATH",
                        help="where the firmware runs (as in keidrive run)")
    parser.add_argument("--truth", metavar="FILE.json", help="ground truth to compare (keidrive simulate --json)")
    parser.add_argument("--plot", metavar="FILE.png", help="plot the firmware's view of the drive (.png .pdf .svg)")
    parser.add_argument(
        "--json", action="store_true",
        help="print the report as JSON: firmware, quality, frames, wall_s, runtime, unknown_frames, explained_share, "
        "truncated (null, or where the log was cut), and truth and timing_error when they apply",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from .. import report
    from ..busio import open_bus, play
    from ..drivelog import read_drive_log, require_same_drive, vehicle_ids
    from ..errors import KeidriveError
    from ..harness import firmware_command
    from ..pacing import describe

    if args.speed is not None and args.speed <= 0:
        raise KeidriveError(f"--speed must be positive, got {args.speed}")
    if args.roles is None and args.dbc and Path(args.dbc).suffix == ".dbc" and Path(args.dbc).stem not in vehicle_ids():
        raise KeidriveError(f"--dbc {args.dbc}: a DBC file of your own car needs --roles ROLES.toml")
    if args.roles is not None:
        if args.dbc is None:
            raise KeidriveError("--roles needs --dbc: the DBC file whose signals the roles file names")
        if not Path(args.dbc).is_file():
            raise KeidriveError(f"{args.dbc}: no such file")
    if args.plot:
        report.check_plot_path(args.plot)
    truth = _load_truth(args.truth) if args.truth else None
    log = read_drive_log(args.log)
    messages = log.messages
    if log.truncated:
        print(f"keidrive: note: {log.describe_cut(args.log)}", file=sys.stderr)
    console = Console()
    started = time.perf_counter()

    if args.no_firmware:
        if not args.bus:
            raise KeidriveError("--no-firmware needs --bus: where should the log go?")
        bus = open_bus(args.bus)
        try:
            figures = play(bus, messages, speed=None if args.fast else (args.speed or 1.0))
        finally:
            bus.shutdown()
        figures["wall_s"] = round(time.perf_counter() - started, 3)
        if args.json:
            print(json.dumps(figures, indent=2))
        else:
            console.print(
                f"played {figures['frames']} frames onto {args.bus} in {figures['wall_s']:.1f} s; {describe(figures)}"
            )
        return 0

    # Before the drive: a log the DBC does not explain, or a truth of another drive.
    log_dbc, unknown, share = explained(args, messages)
    if truth is not None:
        require_same_drive(truth, log_dbc, log, args.truth)
    executable = firmware_command(args.runtime)[0]
    vehicle_dbc, records, firmware, figures = drive(args, messages)
    wall = time.perf_counter() - started
    trip = firmware.trip
    # The report first: a plot that fails late must not lose it.
    if args.json:
        out = {
            "firmware": report.firmware_figures(trip), "quality": report.quality(trip), "frames": len(records),
            "wall_s": round(wall, 3),
            "runtime": executable, "unknown_frames": unknown, "explained_share": share, "truncated": log.truncated,
        }
        if truth is not None:
            out["truth"] = truth
        if "mean_ms" in figures:
            out["timing_error"] = {k: figures[k] for k in ("mean_ms", "p99_ms", "max_ms")}
        print(json.dumps(out, indent=2))
    else:
        report.print_report(trip, truth, console, f"replay of {Path(args.log).name} ({vehicle_dbc}, {args.profile})")
        console.print(f"{vehicle_dbc} explains {share * 100:.1f} % of the frames ({unknown} unknown)")
        if log.truncated:
            console.print(log.describe_cut(args.log))
        console.print(f"{len(records)} frames in {wall:.1f} s")
        console.print(report.runtime_line(args.runtime, executable))
        if "mean_ms" in figures:
            console.print(f"pace: {describe(figures)}")
    if args.plot:
        report.plot(args.plot, firmware.statuses, trip, None, f"replay of {Path(args.log).name}")
        if not args.json:
            console.print(f"plot: {args.plot}")
    return 0


def explained(args, messages):
    """The log's vehicle DBC, its unknown frames and the share of the log
    that DBC explains; a log it mostly does not explain fails here, before
    the firmware starts (``keidrive fleet`` checks each log through this)."""
    from ..drivelog import MIN_EXPLAINED_SHARE, guess_vehicle_dbc, require_coverage

    log_dbc = args.dbc or guess_vehicle_dbc(messages, args.log)
    minimum = getattr(args, "min_explained", None)  # fleet's drives carry no such option
    if minimum is None:
        minimum = MIN_EXPLAINED_SHARE
    unknown, share = require_coverage(messages, log_dbc, args.log, minimum)
    return log_dbc, unknown, share


def drive(args, messages):
    """The log's ``messages`` into the firmware as ``args`` asks: (vehicle
    DBC, records, firmware report, bus figures). ``keidrive fleet`` replays
    each of its logs through this, so a fleet trip is the trip of the same
    ``keidrive replay``. A firmware that fails raises with its reason."""
    from .. import record
    from ..drivelog import guess_vehicle_dbc
    from ..errors import KeidriveError
    from ..fwconfig import require_valid
    from ..harness import feed_over_bus, firmware_command, firmware_config

    vehicle_dbc = args.dbc or guess_vehicle_dbc(messages, args.log)
    roles = getattr(args, "roles", None)  # fleet's drives carry no such option
    # a --roles vehicle module exists only in the compiled tree: its name joins the config there
    config = require_valid(firmware_config(vehicle_dbc, args.profile) if roles is None else {"profile": args.profile})
    firmware_command(args.runtime)  # a missing runtime fails before the replay starts
    records = record.from_messages(messages)
    # As fast as possible into the firmware; at recorded pace onto a bus.
    speed = None if args.fast else (args.speed or (1.0 if args.bus else None))
    if speed not in (None, 1.0) and args.bus and not args.bus.startswith("keidrive:"):
        # The bridge hands the firmware the bus's receive times, not the log's.
        raise KeidriveError(f"--speed {speed:g} with the firmware on {args.bus}: only recorded pace (1) works there")
    # The firmware integrates on the frames' own time (virtual clock); the
    # pace only spaces their delivery, so --speed never rescales the trip.
    feed = dict(bus=args.bus, runtime=args.runtime, realtime=speed is not None, speed=speed, clock="virtual")
    if roles is None:
        firmware, figures = feed_over_bus(records, config, **feed)
    else:  # the user's DBC compiled with its roles into a copy of the firmware tree, as keidrive run does
        import tempfile

        from .. import byodbc

        with tempfile.TemporaryDirectory(prefix="keidrive-dbc-") as folder:
            tree, name, roles_file = byodbc.build_tree(Path(args.dbc), roles, Path(folder))
            for figure in byodbc.missing_figures(roles_file):
                print(f"keidrive: {figure} cannot be computed: {roles.name} names no signal for it", file=sys.stderr)
            firmware, figures = feed_over_bus(records, {**config, "vehicle": name}, tree=tree, **feed)
        vehicle_dbc = Path(args.dbc).stem
    if not firmware.ok:
        raise KeidriveError(firmware.failure())
    return vehicle_dbc, records, firmware, figures


def _load_truth(path: str) -> dict:
    from ..errors import KeidriveError

    try:
        truth = json.loads(Path(path).read_text())
    except OSError as error:
        raise KeidriveError(f"cannot read truth {path}: {error.strerror}") from None
    except ValueError as error:
        raise KeidriveError(f"truth {path} is not JSON: {error}") from None
    if not isinstance(truth, dict) or "distance_km" not in truth:
        raise KeidriveError(f"truth {path} is not the JSON of keidrive simulate --json")
    return truth
