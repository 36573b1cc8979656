"""keidrive run: the main job — drive a kei car through a cycle with the
firmware in the loop and show what it saw (``keidrive.run`` underneath)."""

from __future__ import annotations

import json

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
    options.add_json(parser, "truth, firmware, frames, wall_s, runtime; uplink with --uplink")
    options.add_uplink(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from .. import report, stopping
    from ..drive.simulated import SimulatedDrive
    from ..drive.spec import DriveSpec
    from ..plot import check_plot_path
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
        config=overrides, runtime=args.runtime, bus=args.bus, pace=options.pace_of(args),
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
    screen.finish_report(out, trip, args.runtime, plot_path, args.json)
    return 0


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

    from ..errors import KeidriveError

    if path is None:
        return None
    if path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as error:
        raise KeidriveError(f"cannot write telemetry to {path}: {error.strerror}") from None
