"""Simulator speed: seconds per simulated cycle and frames generated per
second, next to FASTSim 3 on the same cycle when it is installed (an optional
comparison, never a dependency)."""

from __future__ import annotations

import time

from .. import sim


def fastsim3_seconds(cycle):
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


def simulator_figures(vehicle: str = "alto-na", cycle: str = "wltc-jp", repeat: int = 3) -> dict:
    """Best of ``repeat`` runs: physics alone, then physics and CAN frames."""
    veh = sim.load_vehicle(vehicle)
    cyc = sim.load_cycle(cycle)
    sim.simulate(veh, cyc)  # warm caches (DBC parse)
    physics, full, frames = [], [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        sim.simulate(veh, cyc, frames=False)
        physics.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = sim.simulate(veh, cyc)
        full.append(time.perf_counter() - started)
        frames = result.truth["frames"]
    best_physics, best_full = min(physics), min(full)
    fastsim_s, fastsim_note = fastsim3_seconds(cyc)
    return {
        "vehicle": veh.name,
        "cycle": cyc.name,
        "cycle_duration_s": cyc.duration_s,
        "physics_s_per_cycle": round(best_physics, 4),
        "simulate_s_per_cycle": round(best_full, 4),
        "frames": frames,
        "frames_per_s": round(frames / max(best_full - best_physics, 1e-9)),
        "realtime_factor": round(cyc.duration_s / best_full, 1),
        "fastsim3_s_per_cycle": None if fastsim_s is None else round(fastsim_s, 4),
        "fastsim3": fastsim_note,
    }
