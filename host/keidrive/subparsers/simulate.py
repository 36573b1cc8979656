"""keidrive simulate: drive cycle in, CAN traffic and ground truth out."""

from __future__ import annotations

import json

from . import options

# The setting behind each flag whose name differs (errors name the flag).
FLAGS = {"pace": "--speed"}
# A drive served "as fast as it goes" on the OBD-II port: the ECU's clock
# runs this many times faster than the drive's.
OBD_FAST = 1000.0


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate a kei car over a drive cycle: CAN log/bus traffic and ground truth",
        description="Simulate a vehicle preset (or TOML) over a drive cycle (or CSV) and write the CAN "
                    "traffic its powertrain bus carries, frame for frame per its DBC.")
    options.add_drive(p)
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write a CAN log; format by suffix: .asc .blf .log (candump) .trc .csv (any python-can writer)")
    options.add_bus(p, "stream the frames to this bus (at recorded pace unless --fast or --speed)")
    options.add_pace(p)
    p.add_argument("--obd", action="store_true",
                   help="with --bus: be the car's engine ECU on its OBD-II port instead, answering requests "
                        "(Mode 01 / 09) from the drive")
    options.add_plot(p, "keidrive-simulate-<vehicle>-<cycle>.png")
    options.add_json(p, "the ground truth")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    import time

    from .. import sim
    from ..drive.busio import open_bus
    from ..drive.pacing import describe
    from ..drive.spec import check_bus
    from ..errors import KeidriveError
    from ..paths import dbc_dir
    from ..plot import check_plot_path, plot_simulation
    from ..sim.io import check_output_path
    from . import screen

    if args.obd and not args.bus:
        raise KeidriveError("needs {bus}: the engine ECU answers on a bus", option="obd", mentions=("bus",))
    pace = options.pace_of(args, firmware=False)
    vehicle, cycle = sim.load_vehicle(args.vehicle), sim.load_cycle(args.cycle)
    if args.output:
        check_output_path(args.output)  # fail before minutes of work
    plot_path = options.plot_path(args, f"keidrive-simulate-{vehicle.name}-{cycle.name}.png")
    if plot_path is not None:
        check_plot_path(plot_path)
    bus = open_bus(check_bus(args.bus)) if args.bus else None
    err = screen.console(stderr=True)
    try:
        result = sim.simulate(vehicle, cycle)
        if args.output:
            sim.write_log(result, args.output)
        if plot_path is not None:
            plot_simulation(plot_path, result)
        if bus is not None:
            how = "as fast as it goes" if pace is None else f"at {pace:g}x recorded pace"
            role = "the engine ECU answering OBD-II" if args.obd else f"{result.truth['frames']} frames"
            screen.banner(err, "simulate", f"{vehicle.name} on {cycle.name}, {cycle.duration_s:.0f} s",
                          f"{role} on {args.bus}, {how}", screen.attach_hint(args.bus, str(dbc_dir() / vehicle.dbc)))
        if bus is not None and args.obd:
            from ..sim.obd_bus import serve

            speed = pace or OBD_FAST
            with screen.progress(err, "OBD-II", cycle.duration_s) as advance:
                started = time.monotonic()

                def tick() -> bool:  # serve asks whether to stop once a loop: the moment to show progress
                    advance((time.monotonic() - started) * speed)
                    return False

                served = serve(result, bus, speed=speed, stop=tick)
            print(f"answered {served['replies']} of {served['requests']} OBD-II requests on {args.bus}", file=sys.stderr)
        elif bus is not None:
            with screen.progress(err, "frames", result.truth["frames"], unit="frames") as advance:
                sent = sim.stream(result, args.bus, speed=pace, bus=bus, on_frame=advance)
            if pace is not None:
                print(f"sent {sent['frames']} frames on {args.bus}; {describe(sent)}", file=sys.stderr)
    finally:
        if bus is not None:
            bus.shutdown()
    if args.json:
        print(json.dumps(result.truth, indent=2))
    else:
        _summary(result, args, plot_path)
    return 0


def _summary(result, args, plot_path) -> None:
    from . import screen

    t = result.truth
    c = screen.console(stderr=bool(args.json))
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
    if plot_path is not None:
        c.print(f"plot: {plot_path}")
