"""keidrive simulate: drive cycle in, CAN traffic and ground truth out."""

from __future__ import annotations

import json
import sys


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate a kei car over a drive cycle: CAN log/bus traffic and ground truth",
        description="Simulate a vehicle preset (or TOML) over a drive cycle (or CSV) and write the CAN "
                    "traffic its powertrain bus carries, frame for frame per its DBC.")
    p.add_argument("--vehicle", required=True, metavar="NAME|FILE.toml", help="preset name or TOML file")
    p.add_argument("--cycle", required=True, metavar="NAME|FILE.csv", help="bundled cycle name or CSV file")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write a CAN log; format by suffix: .asc .blf .log (candump) .trc .csv (any python-can writer)")
    p.add_argument("--bus", metavar="INTERFACE:CHANNEL[@BITRATE]",
                   help="stream the frames to a python-can bus (e.g. socketcan:vcan0) at recorded pace")
    p.add_argument("--fast", action="store_true", help="with --bus: send as fast as possible, not at recorded pace")
    p.add_argument("--obd", action="store_true",
                   help="with --bus: be the car's engine ECU on its OBD-II port instead, answering requests "
                        "(Mode 01 / 09) from the drive at recorded pace")
    p.add_argument("--json", action="store_true", help="print the ground truth as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="save a plot of speed, engine/motor and fuel/energy traces")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import sim
    from ..drive.busio import open_bus
    from ..drive.pacing import describe
    from ..report import check_plot_path
    from ..sim.io import check_output_path

    if args.output:
        check_output_path(args.output)  # fail before minutes of work
    if args.plot:
        check_plot_path(args.plot)
    if args.obd and not args.bus:
        from ..errors import KeidriveError

        raise KeidriveError("--obd needs --bus: the engine ECU answers on a bus")
    bus = open_bus(args.bus) if args.bus else None
    try:
        result = sim.simulate(args.vehicle, args.cycle)
        if args.output:
            sim.write_log(result, args.output)
        if args.plot:
            _plot(result, args.plot)
        if bus is not None and args.obd:
            from ..sim.obd_bus import serve

            served = serve(result, bus, speed=1000.0 if args.fast else 1.0)
            print(f"answered {served['replies']} of {served['requests']} OBD-II requests on {args.bus}", file=sys.stderr)
        elif bus is not None:
            pace = sim.stream(result, args.bus, realtime=not args.fast, bus=bus)
            if not args.fast:
                print(f"sent {pace['frames']} frames on {args.bus}; {describe(pace)}", file=sys.stderr)
    finally:
        if bus is not None:
            bus.shutdown()
    if args.json:
        print(json.dumps(result.truth, indent=2))
    else:
        _summary(result, args)
    return 0


def _summary(result, args) -> None:
    from rich.console import Console
    t = result.truth
    c = Console(stderr=bool(args.json))
    line = (f"{t['vehicle']} on {t['cycle']}: {t['distance_km']:.3f} km in {t['duration_s']:.0f} s, ")
    if t["km_per_l"]:
        line += f"{t['fuel_l']:.3f} L = {t['km_per_l']:.2f} km/L ({t['l_per_100km']:.2f} L/100 km, {t['mpg_us']:.1f} mpg US)"
    else:
        line += (f"{t['energy_kwh']:.3f} kWh from the pack = {t['energy_kwh'] * 1000 / t['distance_km']:.1f} Wh/km"
                 f" ({result.grid_wh_per_km:.1f} Wh/km from the grid)")
    c.print(line)
    if t["energy_kwh"] and t["km_per_l"]:
        c.print(f"12 V pack net energy out: {t['energy_kwh'] * 1000:.1f} Wh")
    c.print(f"trace shortfall {t['trace_shortfall_s']:.1f} s, {t['frames']} frames"
            + (f" -> {args.output}" if args.output else "") + (f" -> {args.bus}" if args.bus else ""))


def _plot(result, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..errors import KeidriveError

    tr = result.trace
    fig, ax = plt.subplots(3, 1, sharex=True, figsize=(11, 7))
    ax[0].plot(tr["time_s"], tr["target_kmh"], lw=0.8, label="target")
    ax[0].plot(tr["time_s"], tr["speed_kmh"], lw=0.8, label="actual")
    ax[0].set_ylabel("km/h")
    ax[0].legend(loc="upper left")
    if "engine_rpm" in tr:
        ax[1].plot(tr["time_s"], tr["engine_rpm"], lw=0.6)
        ax[1].set_ylabel("engine rpm")
        ax[2].plot(tr["time_s"], tr["fuel_lph"], lw=0.6)
        ax[2].set_ylabel("fuel L/h")
    else:
        ax[1].plot(tr["time_s"], tr["motor_rpm"], lw=0.6)
        ax[1].set_ylabel("motor rpm")
        ax[2].plot(tr["time_s"], tr["pack_power_kw"], lw=0.6)
        ax[2].set_ylabel("pack kW")
    ax[2].set_xlabel("time s")
    fig.suptitle(f"{result.truth['vehicle']} on {result.truth['cycle']}")
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as e:
        raise KeidriveError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
