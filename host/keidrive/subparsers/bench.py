"""keidrive bench: what this machine measures — firmware against cantools,
the whole drive through bus and firmware, the simulator."""

from __future__ import annotations

import json

SECTIONS = ("firmware", "loop", "simulator")


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
        help=f"measure only these sections ({', '.join(SECTIONS)}; default: all)",
    )
    parser.add_argument("--vehicle", default="nbox-turbo", metavar="NAME|FILE.toml", help="default: nbox-turbo")
    parser.add_argument("--cycle", default="wltc-jp", metavar="NAME|FILE.csv", help="default: wltc-jp")
    parser.add_argument("--repeat", type=int, default=3, help="simulator runs to take the best of (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(func=run)


def _sections(only: str | None) -> tuple:
    from ..errors import KeidriveError

    if not only:
        return SECTIONS
    chosen = tuple(name.strip() for name in only.split(",") if name.strip())
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        raise KeidriveError(f"unknown bench section {unknown[0]!r}; valid: {', '.join(SECTIONS)}")
    return chosen


def run(args) -> int:
    from ..errors import KeidriveError

    if args.repeat < 1:
        raise KeidriveError("--repeat must be at least 1")
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
