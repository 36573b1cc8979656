"""keidrive replay: a recorded drive log into the firmware, or onto a bus."""

from __future__ import annotations

import json
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
        "--dbc", metavar="NAME",
        help="vehicle DBC of the log (kei_turbo_660, kei_hybrid_660, kei_ev; default: the one whose "
        "messages the log carries)",
    )
    parser.add_argument("--profile", default="jp-expressway", help="speed profile (default: jp-expressway)")
    parser.add_argument("--bus", metavar="INTERFACE:CHANNEL", help="play the log onto this bus")
    parser.add_argument(
        "--no-firmware", action="store_true", help="with --bus: only play the log, attach no firmware",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=float, metavar="N",
        help="N times the recorded pace (default: recorded pace onto a bus, as fast as possible into the firmware)",
    )
    pace.add_argument("--fast", action="store_true", help="as fast as possible")
    parser.add_argument("--runtime", default="micropython", metavar="micropython|cpython|PATH")
    parser.add_argument("--truth", metavar="FILE.json", help="ground truth to compare (keidrive simulate --json)")
    parser.add_argument("--plot", metavar="FILE.png", help="plot the firmware's view of the drive")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from .. import report
    from ..busio import open_bus, play
    from ..drivelog import guess_vehicle_dbc, read_log
    from ..errors import KeidriveError
    from ..fwconfig import require_valid
    from ..harness import feed_over_bus, firmware_command, firmware_config
    from ..pacing import describe

    if args.speed is not None and args.speed <= 0:
        raise KeidriveError(f"--speed must be positive, got {args.speed}")
    truth = _load_truth(args.truth) if args.truth else None
    messages = read_log(args.log)
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

    from .. import record

    vehicle_dbc = args.dbc or guess_vehicle_dbc(messages, args.log)
    config = require_valid(firmware_config(vehicle_dbc, args.profile))
    firmware_command(args.runtime)  # a missing runtime fails before the replay starts
    records = record.from_messages(messages)
    # As fast as possible into the firmware; at recorded pace onto a bus.
    speed = None if args.fast else (args.speed or (1.0 if args.bus else None))
    firmware, figures = feed_over_bus(
        records, config, bus=args.bus, runtime=args.runtime, realtime=speed is not None, speed=speed,
    )
    wall = time.perf_counter() - started
    if not firmware.ok:
        raise KeidriveError(firmware.failure())
    trip = firmware.trip
    if args.plot:
        report.plot(args.plot, firmware.statuses, trip, None, f"replay of {Path(args.log).name}")
    if args.json:
        out = {"firmware": report.firmware_figures(trip), "frames": len(records), "wall_s": round(wall, 3)}
        if truth is not None:
            out["truth"] = truth
        if "mean_ms" in figures:
            out["timing_error"] = {k: figures[k] for k in ("mean_ms", "p99_ms", "max_ms")}
        print(json.dumps(out, indent=2))
        return 0
    report.print_report(trip, truth, console, f"replay of {Path(args.log).name} ({vehicle_dbc}, {args.profile})")
    console.print(f"{len(records)} frames in {wall:.1f} s")
    if "mean_ms" in figures:
        console.print(f"pace: {describe(figures)}")
    if args.plot:
        console.print(f"plot: {args.plot}")
    return 0


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
