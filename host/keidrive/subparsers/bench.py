"""keidrive bench: how fast the simulator runs (optionally next to FASTSim 3)."""

from __future__ import annotations

import json
import time


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="time the simulator: seconds per cycle, frames per second",
                              description="Time the simulator's physics and CAN frame generation; if FASTSim 3 "
                                          "is installed, time it on the same cycle for comparison.")
    p.add_argument("--vehicle", default="alto-na", metavar="NAME|FILE.toml")
    p.add_argument("--cycle", default="wltc-jp", metavar="NAME|FILE.csv")
    p.add_argument("--repeat", type=int, default=3, help="runs to take the best of (default 3)")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)


def _fastsim3(cycle):
    """Seconds for FASTSim 3 on the same speed trace, or (None, reason)."""
    try:
        import fastsim
    except ImportError:
        return None, "FASTSim not installed (pip install fastsim>=3 to compare)"
    version = getattr(fastsim, "__version__", "?")
    if not str(version).startswith("3"):
        return None, f"FASTSim {version} installed; the comparison needs FASTSim 3"
    try:
        veh = fastsim.Vehicle.from_resource("2012_Ford_Fusion.yaml")
        cyc = fastsim.Cycle.from_pydict({"time_seconds": cycle.time_s.tolist(),
                                         "speed_meters_per_second": cycle.speed_mps.tolist()})
        t = time.perf_counter()
        sd = fastsim.SimDrive(veh, cyc)
        sd.walk()
        return time.perf_counter() - t, f"FASTSim {version} (2012_Ford_Fusion, 1 s step, no CAN frames)"
    except Exception as e:  # an optional comparison must not break the bench
        return None, f"FASTSim {version} failed: {type(e).__name__}: {e}"


def run(args) -> int:
    from .. import sim
    from ..errors import KeidriveError

    if args.repeat < 1:
        raise KeidriveError("--repeat must be at least 1")
    veh = sim.load_vehicle(args.vehicle)
    cyc = sim.load_cycle(args.cycle)
    sim.simulate(veh, cyc)  # warm caches (DBC parse)
    phys, full, frames = [], [], 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        sim.simulate(veh, cyc, frames=False)
        phys.append(time.perf_counter() - t)
        t = time.perf_counter()
        res = sim.simulate(veh, cyc)
        full.append(time.perf_counter() - t)
        frames = res.truth["frames"]
    best_phys, best_full = min(phys), min(full)
    fs_s, fs_note = _fastsim3(cyc)
    out = {
        "vehicle": veh.name, "cycle": cyc.name, "cycle_duration_s": cyc.duration_s,
        "physics_s_per_cycle": round(best_phys, 4),
        "simulate_s_per_cycle": round(best_full, 4),
        "frames": frames,
        "frames_per_s": round(frames / max(best_full - best_phys, 1e-9)),
        "realtime_factor": round(cyc.duration_s / best_full, 1),
        "fastsim3_s_per_cycle": None if fs_s is None else round(fs_s, 4),
        "fastsim3": fs_note,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{veh.name} on {cyc.name} ({cyc.duration_s:.0f} s simulated, best of {args.repeat}):")
    print(f"  physics only        {best_phys:8.3f} s per cycle (10 ms step)")
    print(f"  physics + frames    {best_full:8.3f} s per cycle, {out['realtime_factor']:.0f}x real time")
    print(f"  frames              {frames} generated, {out['frames_per_s']:,} frames/s")
    if fs_s is None:
        print(f"  FASTSim 3           - ({fs_note})")
    else:
        print(f"  FASTSim 3           {fs_s:8.3f} s per cycle - {fs_note}")
    return 0
