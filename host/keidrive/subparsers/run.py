"""keidrive run: the main job — drive a kei car through a cycle with the
firmware in the loop and show what it saw (``keidrive.run`` underneath)."""

from __future__ import annotations

import json

from ..errors import KeidriveError
from . import options

# The setting behind each flag whose name differs (errors name the flag).
FLAGS = {"pace": "--realtime"}


def add_subparser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="drive a simulated kei car through a cycle with the firmware in the loop (the main job)",
        description=(
            "Simulate a vehicle over a drive cycle, put its CAN traffic on a virtual bus with the "
            "firmware attached (MicroPython unix port by default), and report the ground truth "
            "beside the firmware's figures, with a plot."
        ),
    )
    options.add_drive(parser)
    options.add_profile(parser)
    options.add_bus(parser, "bus to drive on (default: a private keidrive virtual bus)")
    options.add_pace(parser, speed=False)
    parser.add_argument(
        "--obd", action="store_true",
        help="the firmware as an OBD-II tester: it polls the simulated engine ECU and takes fuel from what the "
             "ECU supports (lockstep on a private bus)",
    )
    parser.add_argument(
        "--obd-second-ecu", metavar="silent|pending|garbage",
        help="with --obd: a hostile second ECU on the port that claims every PID, then never answers, answers "
             "only 'response pending', or answers garbage",
    )
    options.add_dbc(parser)
    parser.add_argument(
        "--config", metavar="FILE.json",
        help="firmware config keys to use on top of the run's (e.g. obd_ve_pct written by keidrive calibrate)",
    )
    options.add_runtime(parser)
    parser.add_argument(
        "--telemetry", metavar="FILE",
        help="also write the firmware's telemetry JSON lines to FILE as they come (-: stdout, the report then "
        "goes to stderr; e.g. --realtime --telemetry - | keidrive monitor --stdin)",
    )
    options.add_plot(parser, "keidrive-<vehicle>-<cycle>.png")
    options.add_json(parser, "truth, firmware, quality, frames, wall_s, runtime; uplink with --uplink; jurisdictions and "
                             "gps with --route")
    options.add_uplink(parser)
    _add_route(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from .. import report, stopping
    from ..drive.simulated import SimulatedDrive
    from ..drive.spec import DriveSpec
    from ..plot import check_plot_path
    from ..gps.report import print_jurisdictions
    from ..uplink import describe as describe_uplink
    from . import screen

    overrides = None
    if args.config:
        from ..obdcalibrate import read_config

        overrides = read_config(args.config)
    uplink = options.uplink_keys(args, args.vehicle)
    if uplink:
        overrides = {**(overrides or {}), **uplink}
    drive = SimulatedDrive(DriveSpec(
        vehicle=args.vehicle, cycle=args.cycle, profile=args.profile, dbc=args.dbc, roles=args.roles, obd=args.obd,
        obd_second_ecu=args.obd_second_ecu,
        config=overrides, runtime=args.runtime, bus=args.bus, pace=options.pace_of(args), **_route_of(args),
    ))
    plot_path = options.plot_path(args, f"keidrive-{drive.vehicle.name}-{drive.cycle.name}.png")
    if plot_path is not None:
        check_plot_path(plot_path)  # before minutes of driving, not after
    telemetry = _open_telemetry(args.telemetry)

    err = screen.console(stderr=True)
    if not args.json or err.is_terminal:
        _banner(err, drive)
    for note in drive.notes:
        err.print(f"keidrive: {note}", highlight=False)
    with report.TripSoFar() as so_far, screen.progress(err, drive.title, drive.duration_s) as advance:
        def on_event(event):
            nonlocal telemetry
            so_far(event)
            if telemetry is not None:
                try:
                    telemetry.write(json.dumps(event) + "\n")
                    telemetry.flush()
                except BrokenPipeError:  # its reader went away: the run has no one to tell
                    telemetry = None
                    if args.telemetry == "-":
                        stopping.quiet_stdout()
                    where = "stdout" if args.telemetry == "-" else args.telemetry
                    stopping.stop(f"the telemetry reader closed {where}: the run stopped")
            if event.get("type") == "status":
                advance(event["t_s"])

        trip = drive.run(on_event=on_event)
    out = screen.console(stderr=args.telemetry == "-")
    if args.json:
        print(json.dumps(trip.to_json(), indent=2))
    else:
        report.print_report(trip.summary, trip.truth, out, f"{trip.title} ({args.profile})")
        speedup = drive.duration_s / trip.wall_s if trip.wall_s else 0.0
        out.print(f"{trip.frames} frames in {trip.wall_s:.1f} s ({speedup:.0f}x real time)")
        if trip.uplink is not None:
            out.print(describe_uplink(trip.uplink))
        if trip.gps is not None:
            print_jurisdictions(trip.report, trip.route, out)
    screen.finish_report(out, trip, args.runtime, plot_path, args.json)
    return 0


def _add_route(parser) -> None:
    group = parser.add_argument_group("GPS (with --route; docs/gps.md)")
    group.add_argument(
        "--route", metavar="NAME|FILE.gpx|FILE.csv",
        help="drive the cycle along this route (repeated until it covers it) with a GNSS module on the board's "
             "GPS UART: the firmware picks each state's kei rules (bundled: keidrive geo routes)",
    )
    group.add_argument("--gps-rate", type=int, default=1, metavar="HZ", help="fixes per second, 1 or 10 (default 1)")
    group.add_argument("--gps-noise", type=float, default=2.5, metavar="M",
                       help="position noise, metres per axis (default 2.5)")
    group.add_argument("--gps-outage", action="append", default=[], metavar="START:SECONDS",
                       help="no fix from START s for SECONDS (a tunnel); repeatable")
    group.add_argument("--gps-jump", action="append", default=[], metavar="START:SECONDS:METRES[:BEARING]",
                       help="the position off by METRES (towards BEARING degrees, default right of the course) from "
                            "START s for SECONDS (multipath); repeatable")
    group.add_argument("--start", metavar="YYYY-MM-DDTHH:MM", help="when the drive starts, UTC (default: the route's "
                       "own time): the GPS date decides which rules are in force")


def _route_of(args) -> dict:
    """DriveSpec's route, gnss and start from the GPS flags ({} without --route)."""
    import datetime

    from ..gps.nmea import Receiver

    if args.route is None:
        given = [flag for flag, value in (("--gps-outage", args.gps_outage), ("--gps-jump", args.gps_jump),
                                          ("--start", args.start)) if value]
        if given:
            raise KeidriveError(f"{given[0]} goes with --route")
        return {}
    start = None
    if args.start:
        try:
            start = datetime.datetime.fromisoformat(args.start)
        except ValueError:
            raise KeidriveError(f"--start {args.start}: not a date and time (YYYY-MM-DDTHH:MM)") from None
    gnss = Receiver(rate_hz=args.gps_rate, noise_m=args.gps_noise, outages=_spans(args.gps_outage, (2,), "--gps-outage"),
                    jumps=_spans(args.gps_jump, (3, 4), "--gps-jump"))
    return {"route": args.route, "gnss": gnss, "start": start}


def _spans(texts, parts: tuple, flag: str) -> list[tuple]:
    """START:SECONDS[:...] spans of a repeatable GPS flag, each with ``parts`` numbers."""
    spans = []
    for text in texts:
        try:
            values = tuple(float(x) for x in text.split(":"))
        except ValueError:
            values = ()
        if len(values) not in parts or values[0] < 0 or values[1] <= 0:
            form = "START:SECONDS" + (":METRES[:BEARING]" if len(parts) > 1 else "")
            raise KeidriveError(f"{flag} {text}: expected {form} with SECONDS > 0")
        spans.append(values)
    return spans


def _banner(err, drive) -> None:
    from ..paths import dbc_dir
    from .screen import attach_hint, banner

    spec = drive.spec
    how = "in lockstep, as fast as it goes" if drive.pace is None else "at recorded pace"
    where = f"on {spec.bus}" if spec.bus else "on a private bus"
    if spec.obd:
        where = "polling the simulated engine ECU over OBD-II on a private bus"
    dbc = drive.dbc if drive.dbc is not None else dbc_dir() / drive.vehicle.dbc
    banner(err, "run", f"{drive.title} ({spec.profile}), {drive.duration_s:.0f} s of driving",
           f"firmware in {spec.runtime} {where}, {how}", attach_hint(spec.bus, str(dbc)))


def _open_telemetry(path: str | None):
    import sys

    if path is None:
        return None
    if path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as error:
        raise KeidriveError(f"cannot write telemetry to {path}: {error.strerror}") from None
