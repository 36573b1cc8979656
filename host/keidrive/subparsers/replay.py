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
        "--obd", action="store_true",
        help="an OBD-II capture (requests and an ECU's replies): the firmware's OBD-II client polls an ECU that "
        "answers from the recording, reported beside python-OBD's decode of the capture (docs/obd.md)",
    )
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
    parser.add_argument(
        "--nmea", metavar="FILE",
        help="a GNSS module's NMEA capture beside the log: into the firmware's GPS UART among the frames, by the "
             "sentences' own UTC times (the firmware then warns by each state's kei rules)",
    )
    parser.add_argument(
        "--nmea-offset", type=float, metavar="SECONDS",
        help="log time = the capture's UTC time + SECONDS (default: 0 for a log in epoch seconds, else the capture "
             "starts with the log)",
    )
    options.add_plot(parser, "keidrive-replay-<log>.png")
    options.add_json(
        parser, "firmware, quality, frames, wall_s, runtime, unknown_frames, explained_share, truncated (null, or where "
        "the log was cut), and truth, timing_error, jurisdictions and gps when they apply",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..errors import KeidriveError

    if args.obd:
        clash = [flag for flag, given in (("--dbc", args.dbc), ("--roles", args.roles), ("--bus", args.bus),
                                          ("--no-firmware", args.no_firmware), ("--truth", args.truth),
                                          ("--speed", args.speed), ("--min-explained", args.min_explained),
                                          ("--nmea", args.nmea))
                 if given not in (None, False)]
        if clash:
            raise KeidriveError(f"--obd replays in lockstep against python-OBD's decode: {clash[0]} does not apply")

    if args.nmea_offset is not None and args.nmea is None:
        raise KeidriveError("goes with {nmea}", option="nmea_offset", mentions=("nmea",))
    if args.obd:
        return _replay_obd(args)
    if args.no_firmware:
        if not args.bus:
            raise KeidriveError("needs {bus}: where should the log go?", option="no_firmware", mentions=("bus",))
        if args.nmea is not None:
            raise KeidriveError("goes into the firmware's GPS UART: not with {no_firmware}", option="nmea",
                                mentions=("no_firmware",))
        return _play(args)
    return _replay(args)


def _replay(args) -> int:
    from .. import report
    from ..drive.replayed import LogReplay
    from ..gps.report import print_jurisdictions
    from ..io.drivelog import MIN_EXPLAINED_SHARE
    from ..plot import check_plot_path
    from . import screen

    pace = options.pace_of(args)
    plot_path = options.plot_path(args, f"keidrive-replay-{Path(args.log).name.split('.')[0]}.png")
    if plot_path is not None:
        check_plot_path(plot_path)
    minimum = MIN_EXPLAINED_SHARE if args.min_explained is None else args.min_explained
    replay = LogReplay(args.log, profile=args.profile, dbc=args.dbc, roles=args.roles, runtime=args.runtime,
                       bus=args.bus, pace=pace, min_explained=minimum, truth=args.truth, nmea=args.nmea,
                       nmea_offset=args.nmea_offset)
    err = screen.console(stderr=True)
    if replay.log.truncated:
        err.print(f"keidrive: note: {replay.log.describe_cut(args.log)}", highlight=False)
    for note in replay.notes:
        err.print(f"keidrive: {note}", highlight=False)
    if not args.json or err.is_terminal:
        _banner(err, replay, args)
    with report.TripSoFar() as so_far, screen.progress(err, replay.title, replay.duration_s) as advance:
        def on_event(event):
            so_far(event)
            if event.get("type") == "status":
                advance(event["t_s"])

        trip = replay.run(on_event=on_event)
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
        if trip.gps is not None:
            print_jurisdictions(trip.report, None, out)
    screen.finish_report(out, trip, args.runtime, plot_path, args.json)
    return 0


def _replay_obd(args) -> int:
    from .. import report
    from ..drive import obdreplay
    from ..drive.harness import firmware_command
    from ..io.drivelog import read_drive_log
    from . import screen

    started = time.perf_counter()
    log = read_drive_log(args.log)
    err = screen.console(stderr=True)
    if log.truncated:
        err.print(f"keidrive: note: {log.describe_cut(args.log)}", highlight=False)
    executable = firmware_command(args.runtime)[0]
    with report.TripSoFar() as so_far:
        out = obdreplay.replay_obd(log.messages, source=args.log, profile=args.profile, runtime=args.runtime,
                                   on_event=so_far)
    trip = out["report"].trip
    firmware = report.firmware_figures(trip)
    if args.json:
        print(json.dumps({
            "firmware": firmware, "quality": report.quality(trip), "reference": out["reference"],
            "difference_pct": obdreplay.compare(firmware, out["reference"]), "capture": out["capture"],
            "frames": out["figures"]["frames"], "wall_s": round(time.perf_counter() - started, 3),
            "runtime": executable, "truncated": log.truncated,
        }, indent=2))
        return 0
    console = screen.console()
    reference = out["reference"]
    report.print_report(trip, reference, console, f"OBD-II replay of {Path(args.log).name}",
                        columns=(reference["decoder"], "firmware vs python-OBD"))
    capture = out["capture"]
    console.print(f"capture: {capture['replies']} replies from {capture['reply_id']} over "
                  f"{capture['duration_s']:.0f} s, PIDs {' '.join(capture['pids'])}, each about every "
                  f"{capture['poll_interval_s']} s; answered with the recorded reply nearest in time")
    console.print(f"fuel method: {firmware['fuel_method']}; VIN {firmware['obd']['vin'] or '-'}")
    console.print(report.runtime_line(args.runtime, executable))
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
