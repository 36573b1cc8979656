"""keidrive replay: a recorded drive log into the firmware (``keidrive.replay``
underneath), or onto a bus."""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import options

# The setting behind each flag whose name differs (errors name the flag).
FLAGS = {"pace": "--speed"}


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
    options.add_profile(parser)
    options.add_dbc(parser)
    parser.add_argument(
        "--min-explained", type=float, metavar="SHARE",
        help="refuse a log the vehicle DBC explains less of than this share of frames (default 0.5: below it "
        "the log is of another car or the DBC is wrong; lower it for a bus that also carries other traffic)",
    )
    options.add_bus(parser, "the bus to replay on (default: a private keidrive virtual bus)")
    parser.add_argument(
        "--no-firmware", action="store_true", help="with --bus: only play the log, attach no firmware",
    )
    options.add_pace(parser)
    options.add_runtime(parser)
    parser.add_argument("--truth", metavar="FILE.json", help="ground truth to compare (keidrive simulate --json)")
    options.add_plot(parser, "keidrive-replay-<log>.png")
    options.add_json(
        parser, "firmware, frames, wall_s, runtime, unknown_frames, explained_share, truncated (null, or where "
        "the log was cut), and truth and timing_error when they apply",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..errors import KeidriveError

    if args.no_firmware:
        if not args.bus:
            raise KeidriveError("needs {bus}: where should the log go?", option="no_firmware", mentions=("bus",))
        return _play(args)
    return _replay(args)


def _replay(args) -> int:
    from .. import report
    from ..drive.replayed import LogReplay
    from ..io.drivelog import MIN_EXPLAINED_SHARE
    from ..plot import check_plot_path
    from . import screen

    pace = options.pace_of(args)
    plot_path = options.plot_path(args, f"keidrive-replay-{Path(args.log).name.split('.')[0]}.png")
    if plot_path is not None:
        check_plot_path(plot_path)
    minimum = MIN_EXPLAINED_SHARE if args.min_explained is None else args.min_explained
    replay = LogReplay(args.log, profile=args.profile, dbc=args.dbc, roles=args.roles, runtime=args.runtime,
                       bus=args.bus, pace=pace, min_explained=minimum, truth=args.truth)
    err = screen.console(stderr=True)
    if replay.log.truncated:
        err.print(f"keidrive: note: {replay.log.describe_cut(args.log)}", highlight=False)
    for note in replay.notes:
        err.print(f"keidrive: {note}", highlight=False)
    if not args.json or err.is_terminal:
        _banner(err, replay, args)
    with screen.progress(err, replay.title, replay.duration_s) as advance:
        trip = replay.run(on_event=lambda event: advance(event["t_s"]) if event.get("type") == "status" else None)
    out = screen.console()
    if args.json:
        print(json.dumps(trip.to_json(), indent=2))
    else:
        report.print_report(trip.summary, trip.truth, out, f"{trip.title} ({trip.log['dbc']}, {args.profile})")
        out.print(f"{trip.log['dbc']} explains {trip.log['explained_share'] * 100:.1f} % of the frames "
                  f"({trip.log['unknown_frames']} unknown)")
        if replay.log.truncated:
            out.print(replay.log.describe_cut(args.log))
        out.print(f"{trip.frames} frames in {trip.wall_s:.1f} s")
    screen.finish_report(out, trip, args.runtime, plot_path, args.json)
    return 0


def _banner(err, replay, args) -> None:
    from .screen import attach_hint, banner

    how = "as fast as it goes" if replay.pace is None else f"at {replay.pace:g} times the recorded pace"
    where = f"on {args.bus}" if args.bus else "on a private bus"
    banner(err, "replay", f"{Path(args.log).name}, {len(replay.log.messages)} frames, {replay.duration_s:.0f} s "
           f"({replay.vehicle_dbc}, {args.profile})", f"firmware in {args.runtime} {where}, {how}",
           attach_hint(args.bus, args.dbc if args.dbc and str(args.dbc).endswith(".dbc") else None))


def _play(args) -> int:
    """The log onto ``--bus`` alone, at the pace asked (recorded by default)."""
    from ..drive.busio import open_bus, play
    from ..drive.pacing import describe
    from ..drive.spec import check_bus
    from ..io.drivelog import read_drive_log
    from . import screen

    pace = options.pace_of(args, firmware=False)
    log = read_drive_log(args.log)
    err = screen.console(stderr=True)
    if log.truncated:
        err.print(f"keidrive: note: {log.describe_cut(args.log)}", highlight=False)
    bus = open_bus(check_bus(args.bus))
    started = time.perf_counter()
    try:
        if not args.json or err.is_terminal:
            screen.banner(err, "replay", f"{Path(args.log).name}, {len(log.messages)} frames",
                          f"onto {args.bus}, " + ("as fast as it goes" if pace is None else f"at {pace:g}x recorded pace"),
                          screen.attach_hint(args.bus))
        with screen.progress(err, "frames", len(log.messages), unit="frames") as advance:
            figures = play(bus, log.messages, speed=pace, on_frame=advance)
    finally:
        bus.shutdown()
    figures["wall_s"] = round(time.perf_counter() - started, 3)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        screen.console().print(
            f"played {figures['frames']} frames onto {args.bus} in {figures['wall_s']:.1f} s; {describe(figures)}"
        )
    return 0
