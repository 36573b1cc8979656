"""keidrive bench: what this machine measures — firmware against cantools,
the whole drive through bus and firmware, the simulator, the virtual bus."""

from __future__ import annotations

import json

SECTIONS = ("firmware", "loop", "simulator", "bus", "fleet", "compiler", "uplink", "scale")
# The fleet section starts Dask clusters (the fleet extra), the uplink section brokers (the collect
# extra), scale drives ten times the cycle: only when asked.
DEFAULT_SECTIONS = ("firmware", "loop", "simulator", "bus")


def add_subparser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure the firmware (vs cantools), the firmware-in-the-loop drive and the simulator",
        description=(
            "Measure on this machine: the firmware's full loop in MicroPython against cantools "
            "decode_message on the same frames (ratio, bytes allocated per frame); a whole drive through "
            "the virtual bus and the firmware against its duration; the simulator's seconds per cycle and "
            "frames per second (next to FASTSim 3 if installed)."
        ),
    )
    parser.add_argument(
        "--only", metavar="SECTION,...",
        help=f"measure only these sections ({', '.join(SECTIONS)}; default: {', '.join(DEFAULT_SECTIONS)})",
    )
    parser.add_argument("--vehicle", default="nbox-turbo", metavar="NAME|FILE.toml", help="default: nbox-turbo")
    parser.add_argument("--cycle", default="wltc-jp", metavar="NAME|FILE.csv", help="default: wltc-jp")
    parser.add_argument("--repeat", type=int, default=3,
                        help="simulator runs, and scale's runs of the cycle, to take the best of (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--robustness", action="store_true",
        help="instead: the robustness figures (random frames, fault scenarios, a 100 %% bus flood, power cuts); "
             "with --json exactly random_frames, exceptions, false_warnings, power_cuts, corrupt_loads, "
             "max_lost_s, save_interval_s, flood_latency_ms_p99",
    )
    parser.add_argument("--random-frames", type=int, default=1_000_000, metavar="N",
                        help="random frames for --robustness (default 1000000)")
    parser.add_argument("--power-cuts", type=int, default=200, metavar="N",
                        help="power cuts for --robustness (default 200)")
    parser.add_argument(
        "--target", choices=("qemu", "rp2040"),
        help="instead: the firmware on MicroPython's Cortex-M3 build under qemu (keidrive target build qemu); "
             "with --json exactly instr_per_frame_stream, instr_per_frame_board, instr_per_frame_transport, "
             "alloc_bytes_per_frame, heap_size, heap_free_after_boot, heap_free_min, flash_bytes and the ESP32 "
             "and RP2040 estimates with their assumptions. rp2040: on an emulated Raspberry Pi Pico, frames "
             "through its MCP2515 (keidrive target build rp2040; docs/targets.md lists the keys)",
    )
    parser.set_defaults(func=run)


def _sections(only: str | None) -> tuple:
    from ..errors import KeidriveError

    if not only:
        return DEFAULT_SECTIONS
    chosen = tuple(name.strip() for name in only.split(",") if name.strip())
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        raise KeidriveError(f"unknown bench section {unknown[0]!r}; valid: {', '.join(SECTIONS)}")
    return chosen


def run(args) -> int:
    from ..errors import KeidriveError

    if args.repeat < 1:
        raise KeidriveError("--repeat must be at least 1")
    if args.robustness:
        return _robustness(args)
    if args.target:
        return _target(args)
    sections = _sections(args.only)
    figures: dict = {}
    if "firmware" in sections:
        from ..bench.firmware import firmware_figures

        firmware = firmware_figures(args.vehicle, args.cycle)
        # The firmware's figures are the top-level contract of --json.
        figures.update(firmware)
    if "loop" in sections:
        from ..bench.loop import loop_figures

        figures["loop"] = loop_figures(args.vehicle, args.cycle)
    if "simulator" in sections:
        from ..bench.simulator import simulator_figures

        figures["simulator"] = simulator_figures(args.vehicle, args.cycle, args.repeat)
    if "bus" in sections:
        from ..bench.bus import bus_figures

        figures["bus"] = bus_figures()
    if "fleet" in sections:
        from ..bench.fleet import fleet_figures

        figures["fleet"] = fleet_figures(args.cycle)
    if "compiler" in sections:
        from ..bench.compiler import compiler_figures

        figures["compiler"] = compiler_figures()
    if "uplink" in sections:
        from ..bench.uplink import uplink_figures

        figures["uplink"] = uplink_figures(args.vehicle, args.cycle)
    if "scale" in sections:
        from ..bench.scale import scale_figures

        figures["scale"] = scale_figures(args.vehicle, args.cycle, args.repeat)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print(figures)
    return 0


def _print(figures: dict) -> None:
    if "firmware_fps" in figures:
        print(f"firmware, {figures['vehicle']} on {figures['cycle']} ({figures['frames']} frames):")
        print(f"  full loop in MicroPython   {figures['firmware_fps']:>12,} frames/s")
        print(f"  cantools decode_message    {figures['cantools_fps']:>12,} frames/s (CPython)")
        print(f"  ratio                      {figures['ratio']:>12} (target >= 2)")
        print(f"  allocated per frame        {figures['alloc_bytes_per_frame']:>12} bytes (target 0)")
        print(f"  under heap_lock            {'ok' if figures['heap_locked_ok'] else 'MemoryError':>12}")
    loop = figures.get("loop")
    if loop:
        print(f"firmware in the loop, {loop['vehicle']} on {loop['cycle']} over the keidrive virtual bus:")
        print(f"  {loop['frames']} frames, {loop['cycle_duration_s']:.0f} s of driving in {loop['wall_s']:.2f} s:"
              f" {loop['realtime_factor']:.0f}x real time (target >= {loop['target_realtime_factor']}x)")
    simulator = figures.get("simulator")
    if simulator:
        print(f"simulator, {simulator['vehicle']} on {simulator['cycle']} (best of runs):")
        print(f"  physics only               {simulator['physics_s_per_cycle']:>10.3f} s per cycle (10 ms step)")
        print(f"  physics + frames           {simulator['simulate_s_per_cycle']:>10.3f} s per cycle,"
              f" {simulator['realtime_factor']:.0f}x real time")
        print(f"  frames                     {simulator['frames_per_s']:>10,} frames/s generated")
        if simulator["fastsim3_s_per_cycle"] is None:
            print(f"  FASTSim 3                  - ({simulator['fastsim3']})")
        else:
            print(f"  FASTSim 3                  {simulator['fastsim3_s_per_cycle']:>10.3f} s per cycle"
                  f" - {simulator['fastsim3']}")
    bus = figures.get("bus")
    if bus:
        print("keidrive virtual bus, one sender to one receiver:")
        print(f"  through the hub            {bus['hub_fps']:>10,} frames/s ({bus['hub_frames']} records, bulk),"
              f" hub CPU {bus['hub_cpu_us_per_frame']} us/frame")
        print(f"  python-can send/recv       {bus['single_fps']:>10,} frames/s ({bus['single_frames']} messages),"
              f" hub CPU {bus['single_hub_cpu_us_per_frame']} us/frame")
    fleet = figures.get("fleet")
    if fleet:
        print(f"fleet, {fleet['drives']} drives on {fleet['cycle']} (every preset, 2 profiles,"
              f" {fleet['rounds']} times), local Dask cluster:")
        for workers in (1, 2):
            rate = fleet[f"workers_{workers}"]
            times = rate["drive_time"]
            print(f"  {workers} worker{'s' if workers > 1 else ' '}                  {rate['drives_per_s']:>10.3f}"
                  f" drives/s ({rate['wall_s']:.1f} s, load {rate['load_avg_1min']}); a drive on a worker:"
                  f" mean {times['mean_s']} s, p10 {times['p10_s']}, median {times['median_s']},"
                  f" p90 {times['p90_s']}, max {times['max_s']}")
        print(f"  efficiency                 {fleet['efficiency']:>10.3f} (2-worker rate / 2 x 1-worker rate)"
              + (f"; {fleet['failed']} drives failed" if fleet["failed"] else ""))
    if figures.get("compiler"):
        from ..bench.compiler import print_compiler

        print_compiler(figures["compiler"])
    if figures.get("uplink"):
        from ..bench.uplink import print_uplink

        print_uplink(figures["uplink"])
    if figures.get("scale"):
        from ..bench.scale import print_scale

        print_scale(figures["scale"])


def _target(args) -> int:
    if args.target == "rp2040":
        return _pico(args)
    from ..bench.target import method, target_figures

    figures = target_figures(args.vehicle, args.cycle)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"firmware on the qemu Cortex-M3 board, {args.vehicle} on {args.cycle}:")
    for key, value in figures.items():
        if key != "estimate_assumptions":
            print(f"  {key:<32} {value:>10}")
    print(f"estimates assume: {figures['estimate_assumptions']}")
    print(f"method: {method(figures)}")
    return 0


def _pico(args) -> int:
    from ..bench.pico import rp2040_figures

    figures = rp2040_figures(args.vehicle, args.cycle)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"firmware on an emulated Raspberry Pi Pico (rp2040js), MCP2515 on SPI0, {args.vehicle} on {args.cycle}:")
    for key, value in figures.items():
        if key != "timing_note":
            print(f"  {key:<30} {value:>12}" if not isinstance(value, str) else f"  {key:<30} {value}")
    print(f"saturated bus: {figures['saturated_s']} s of the drive from {figures['saturated_from_s']:.0f} s with an ENGINE_1 frame "
          "in every idle bit time; cycles the core executed (not waiting) per frame received")
    print(f"timing: {figures['timing_note']}")
    return 0


def _robustness(args) -> int:
    from ..bench.robustness import robustness_figures
    from ..errors import KeidriveError

    if args.random_frames < 1 or args.power_cuts < 1:
        raise KeidriveError("--random-frames and --power-cuts must be at least 1")
    result = robustness_figures(random_frames=args.random_frames, power_cuts=args.power_cuts)
    figures = result["figures"]
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    details = result["details"]
    flood = details["flood"]
    cuts = details["power_cuts"]
    print(f"random frames          {figures['random_frames']:>10,}  exceptions {figures['exceptions']},"
          f" false warnings {figures['false_warnings']}")
    for run in details["random"]["runs"]:
        kinds = ", ".join(f"{k} {v:,}" for k, v in run["rejected"].items())
        print(f"  {run['vehicle']:<16} {kinds}; firmware counters agree: {run['counters_agree']}")
    scen = details["scenarios"]
    print(f"fault scenarios        {scen['runs']:>10}  exceptions {scen['exceptions']},"
          f" false warnings {scen['false_warnings']}")
    print(f"flood (ID 0x000, {flood['flood_bus_load'] * 100:.0f} % bus load, {flood['flood_frames']:,} frames):"
          f" loop latency p99 {flood['latency_flood']['p99_ms']} ms (without flood {flood['latency_clean']['p99_ms']} ms),"
          f" trip distance {flood['distance_km']} km vs {flood['clean_distance_km']} km clean")
    print(f"power cuts             {figures['power_cuts']:>10}  corrupt loads {figures['corrupt_loads']},"
          f" max lost {figures['max_lost_s']} s (save interval {figures['save_interval_s']} s)")
    for mode, m in sorted(cuts["by_mode"].items()):
        print(f"  {mode:<6} {m['cuts']:>4} cuts, max lost {m['max_lost_s']} s, slot torn by the kill itself:"
              f" {m.get('torn_by_kill', 0)}")
    print(f"({details['wall_s']} s)")
    return 0
