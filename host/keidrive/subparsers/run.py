"""keidrive run: the main job — drive a kei car through a cycle with the
firmware in the loop and show what it saw."""

from __future__ import annotations

import json
import time
from pathlib import Path


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
    parser.add_argument("--vehicle", default="nbox-turbo", metavar="NAME|FILE.toml", help="default: nbox-turbo")
    parser.add_argument("--cycle", default="wltc-jp", metavar="NAME|FILE.csv", help="default: wltc-jp")
    parser.add_argument("--profile", default="jp-expressway", help="speed profile (default: jp-expressway)")
    parser.add_argument(
        "--bus", metavar="INTERFACE:CHANNEL[@BITRATE]",
        help="bus to drive on: keidrive:NAME (attachable with -i keidrive -c NAME), socketcan:vcan0, ...; "
        "@BITRATE is python-can's -b (keidrive:NAME@125000 paces the virtual bus) "
        "(default: a private keidrive virtual bus)",
    )
    parser.add_argument("--realtime", action="store_true", help="recorded pace, firmware on its own clock")
    parser.add_argument(
        "--obd", action="store_true",
        help="the firmware as an OBD-II tester: it polls the simulated engine ECU (no DBC traffic) and takes fuel "
        "from what the ECU supports (lockstep on a private bus)",
    )
    parser.add_argument(
        "--dbc", type=Path, metavar="DBC",
        help="drive the preset on a bus in this DBC's format (with --roles): the simulator encodes the role "
             "signals, the firmware runs the DBC compiled with the roles file",
    )
    parser.add_argument("--roles", type=Path, metavar="ROLES.toml", help="the roles file for --dbc")
    parser.add_argument(
        "--config", metavar="FILE.json",
        help="firmware config keys to use on top of the run's (e.g. obd_ve_pct written by keidrive calibrate)",
    )
    parser.add_argument(
        "--runtime", default="micropython", metavar="micropython|cpython|unix32|qemu|qemu-mpy|rp2040|PATH",
        help="where the firmware runs: the MicroPython unix port (default), CPython, the 32-bit targets "
             "(keidrive target build: unix32, the qemu Cortex-M3 board with the firmware frozen or as .mpy, "
             "rp2040: an emulated Raspberry Pi Pico, the frames through its MCP2515), or your micropython build",
    )
    parser.add_argument(
        "--telemetry", metavar="FILE",
        help="also write the firmware's telemetry JSON lines to FILE as they come (-: stdout, the report then "
        "goes to stderr; e.g. --realtime --telemetry - | keidrive monitor --stdin)",
    )
    plot = parser.add_mutually_exclusive_group()
    plot.add_argument(
        "--plot", metavar="FILE.png",
        help="plot path, .png .pdf or .svg (default: keidrive-<vehicle>-<cycle>.png; with --json only when given)",
    )
    plot.add_argument("--no-plot", action="store_true", help="write no plot")
    parser.add_argument(
        "--json", action="store_true",
        help="print the report as JSON (truth, firmware, frames, wall_s, runtime); writes a plot only with --plot",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .. import report
    from ..harness import firmware_command
    from ..pacing import describe

    vehicle, cycle, config = prepare(args)
    executable = firmware_command(args.runtime)[0]
    plot_path = _plot_path(args, vehicle, cycle)
    if plot_path is not None:
        report.check_plot_path(plot_path)  # before minutes of driving, not after

    console = Console(stderr=True)
    telemetry = _open_telemetry(args.telemetry)
    started = time.perf_counter()
    duration = cycle.duration_s
    with Progress(
        TextColumn(f"{vehicle.name} on {cycle.name}"), BarColumn(), TextColumn("{task.fields[t]:>7.0f} s"),
        TimeRemainingColumn(), console=console, transient=True, disable=args.json and not console.is_terminal,
    ) as progress:
        task = progress.add_task("drive", total=duration, t=0.0)

        def on_event(event):
            if telemetry is not None:
                telemetry.write(json.dumps(event) + "\n")
                telemetry.flush()
            if event.get("type") == "status":
                progress.update(task, completed=min(event["t_s"], duration), t=event["t_s"])

        result, firmware, figures = drive(args, vehicle, cycle, config, on_event=on_event)
    wall = time.perf_counter() - started
    trip = firmware.trip
    # The report first: a plot that fails late must not lose a drive that ran.
    out = Console(stderr=args.telemetry == "-")
    if args.json:
        print(json.dumps({
            "truth": result.truth,
            "firmware": report.firmware_figures(trip),
            "frames": result.truth["frames"],
            "wall_s": round(wall, 3),
            "runtime": executable,
        }, indent=2))
    else:
        report.print_report(trip, result.truth, out, f"{vehicle.name} on {cycle.name} ({args.profile})")
        speedup = duration / wall if wall else 0.0
        out.print(f"{result.truth['frames']} frames in {wall:.1f} s ({speedup:.0f}x real time)")
        out.print(report.runtime_line(args.runtime, executable))
        if "mean_ms" in figures:
            out.print(f"pace: {describe(figures)}")
    if plot_path is not None:
        report.plot(plot_path, firmware.statuses, trip, result.trace, f"{vehicle.name} on {cycle.name}, {args.profile}")
        if not args.json:
            out.print(f"plot: {plot_path}")
    return 0


def _plot_path(args, vehicle, cycle) -> str | None:
    """--plot's path; without it the default name, except with --json (a
    machine's report writes no file it was not asked for) or --no-plot."""
    if args.plot is not None:
        return args.plot
    if args.no_plot or args.json:
        return None
    return f"keidrive-{vehicle.name}-{cycle.name}.png"


def prepare(args):
    """The vehicle, cycle and firmware config of the drive ``args`` asks for;
    bad input fails here, before any work. ``keidrive fleet`` prepares and
    drives each of its simulated drives through this and ``drive``, so a
    fleet trip is the trip of the same ``keidrive run``."""
    from .. import sim
    from ..fwconfig import require_valid
    from ..harness import firmware_command, firmware_config

    vehicle = sim.load_vehicle(args.vehicle)
    cycle = sim.load_cycle(args.cycle)
    overrides = None
    if getattr(args, "config", None):
        from ..obdcalibrate import read_config

        overrides = read_config(args.config)
    config = require_valid(firmware_config(vehicle.dbc, args.profile, overrides))
    firmware_command(args.runtime)  # a missing runtime fails before the drive is simulated
    return vehicle, cycle, config


def drive(args, vehicle, cycle, config, on_event=None):
    """Simulate the drive and feed its traffic to the firmware over the bus:
    (simulator result, firmware report, bus figures). A firmware that fails
    raises with its reason."""
    from .. import record, sim
    from ..errors import KeidriveError
    from ..harness import feed_over_bus

    if getattr(args, "dbc", None) is not None or getattr(args, "roles", None) is not None:
        return _drive_dbc(args, vehicle, cycle, config, on_event)
    if getattr(args, "obd", False):
        return _drive_obd(args, vehicle, cycle, config, on_event)
    result = sim.simulate(vehicle, cycle)
    firmware, figures = feed_over_bus(
        record.from_frames(result.frames), config, bus=args.bus, runtime=args.runtime, realtime=args.realtime,
        on_event=on_event,
    )
    if not firmware.ok:
        raise KeidriveError(firmware.failure())
    return result, firmware, figures


def _drive_dbc(args, vehicle, cycle, config, on_event):
    """The preset's drive on a bus in --dbc's format, the firmware running that DBC
    compiled with --roles (keidrive.byodbc)."""
    import sys
    import tempfile

    from .. import byodbc, record, sim
    from ..errors import KeidriveError
    from ..harness import feed_over_bus

    if args.dbc is None or args.roles is None:
        raise KeidriveError("--dbc and --roles go together")
    if args.obd and (args.bus is not None or args.realtime):
        raise KeidriveError("--obd drives in lockstep on a private bus: --bus and --realtime do not apply")
    if not args.dbc.is_file():
        raise KeidriveError(f"{args.dbc}: no such file")
    result = sim.simulate(vehicle, cycle)
    with tempfile.TemporaryDirectory(prefix="keidrive-dbc-") as folder:
        tree, name, roles = byodbc.build_tree(args.dbc, args.roles, Path(folder))
        frames = byodbc.translate(result, args.dbc, roles)
        if args.obd:  # the DBC's traffic and the engine ECU's OBD-II replies on one bus
            from ..obdloop import drive_obd

            report, figures = drive_obd(result, profile=args.profile, config=config, runtime=args.runtime,
                                        on_event=on_event, tree=tree, vehicle_module=name, bus_frames=frames)
            if not report.ok:
                raise KeidriveError(report.failure())
            result.truth["frames"] = figures["frames"]
            return result, report, figures
        for figure in byodbc.missing_figures(roles):
            print(f"keidrive: {figure} cannot be computed: {args.roles.name} names no signal for it "
                  "(--obd: from OBD-II)", file=sys.stderr)
        result.truth["frames"] = len(frames["timestamp"])
        report, figures = feed_over_bus(record.from_frames(frames), {**config, "vehicle": name}, bus=args.bus,
                                        runtime=args.runtime, realtime=args.realtime, on_event=on_event, tree=tree)
    if not report.ok:
        raise KeidriveError(report.failure())
    return result, report, figures


def _drive_obd(args, vehicle, cycle, config, on_event):
    from .. import sim
    from ..errors import KeidriveError
    from ..obdloop import drive_obd

    if args.bus is not None or args.realtime:
        raise KeidriveError("--obd drives in lockstep on a private bus: --bus and --realtime do not apply")
    result = sim.simulate(vehicle, cycle, frames=False)
    firmware, figures = drive_obd(result, profile=args.profile, config=config, runtime=args.runtime,
                                  on_event=on_event)
    if not firmware.ok:
        raise KeidriveError(firmware.failure())
    result.truth["frames"] = figures["frames"]  # the OBD-II requests and replies on the bus
    return result, firmware, figures


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
