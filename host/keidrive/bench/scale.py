"""Scale: ``keidrive run`` and ``keidrive replay`` as whole processes, the
way a user starts and times them, on a drive and on the same drive ten times
over: wall time, real-time factor, peak resident memory of the keidrive
process (flat in the drive's length when nothing is held per frame) and the
CPU of every process of the drive (keidrive itself, the firmware, a bus hub).

The long drive is the cycle repeated back to back, one second at standstill
between repeats (continuous driving, not a parked gap); the replayed logs are
``keidrive simulate -o`` of the same drives, written before anything is
timed. The load average beside each figure says how busy the machine was.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import sim
from .process_tree import measure

REPEATS = 10
LOG_SUFFIX = ".blf"


def _repeated_cycle(cycle: sim.Cycle, times: int, path: Path) -> Path:
    """``cycle`` ``times`` over as a cycle CSV."""
    span = cycle.duration_s + 1.0
    lines = ["time_s,speed_kmh,grade_pct"]
    for repeat in range(times):
        for t, v, g in zip(cycle.time_s.tolist(), cycle.speed_mps.tolist(), cycle.grade.tolist()):
            lines.append(f"{t - cycle.time_s[0] + repeat * span:.3f},{v * 3.6:.6f},{g * 100:.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _kind(cmdline: str) -> str:
    if "keidrive.vbus.hub" in cmdline:
        return "hub"
    if "main.py" in cmdline and "--config" in cmdline:
        return "firmware"
    return "other"


def _keidrive(*args: str) -> list[str]:
    return [sys.executable, "-m", "keidrive", *args]


def _timed(command: list[str], duration_s: float, runs: int) -> dict:
    """``runs`` runs of ``command`` (``--json``): the best wall time and the
    figures of that run, the median, and the load average before each."""
    results = []
    for _ in range(runs):
        load = os.getloadavg()[0]
        outcome = measure(command, _kind)
        if outcome["returncode"] != 0:
            raise RuntimeError(f"{' '.join(command[2:])} failed: {outcome['stderr'].strip()[-500:]}")
        outcome["load_avg_1min"] = round(load, 2)
        results.append(outcome)
    best = min(results, key=lambda outcome: outcome["wall_s"])
    processes = best["processes"]
    total_cpu = sum(kind["cpu_s"] for kind in processes.values()) or 1e-9
    return {
        "frames": json.loads(best["stdout"])["frames"],
        "duration_s": duration_s,
        "wall_s": round(best["wall_s"], 3),
        "wall_s_median": round(statistics.median(r["wall_s"] for r in results), 3),
        "runs": runs,
        "realtime_factor": round(duration_s / best["wall_s"]),
        "peak_rss_mib": max(r["processes"]["keidrive"]["peak_rss_mib"] for r in results),
        "cpu_s": {name: kind["cpu_s"] for name, kind in sorted(processes.items())},
        "cpu_share": {name: round(kind["cpu_s"] / total_cpu, 3) for name, kind in sorted(processes.items())},
        "peak_rss_mib_by_process": {name: kind["peak_rss_mib"] for name, kind in sorted(processes.items())},
        "load_avg_1min": [r["load_avg_1min"] for r in results],
    }


def _pair(one: dict, many: dict) -> dict:
    return {
        "1x": one,
        f"{REPEATS}x": many,
        "peak_rss_ratio": round(many["peak_rss_mib"] / one["peak_rss_mib"], 3),
        "wall_ratio": round(many["wall_s"] / one["wall_s"], 2),
    }


def scale_figures(vehicle: str = "nbox-turbo", cycle: str = "wltc-jp", runs: int = 3) -> dict:
    """Run and replay at 1x (``runs`` times, the best taken) and at
    ``REPEATS`` x (once) the drive's length."""
    one = sim.load_cycle(cycle)
    with tempfile.TemporaryDirectory(prefix="keidrive-bench-scale-") as folder:
        folder = Path(folder)
        many_csv = _repeated_cycle(one, REPEATS, folder / f"{one.name}-x{REPEATS}.csv")
        many = sim.load_cycle(many_csv)
        drives = {"1x": (cycle, one.duration_s, runs), f"{REPEATS}x": (str(many_csv), many.duration_s, 1)}
        logs = {}
        for label, (name, _, _) in drives.items():
            logs[label] = folder / f"{label}{LOG_SUFFIX}"
            subprocess.run(_keidrive("simulate", "--vehicle", vehicle, "--cycle", name, "-o", str(logs[label]),
                                     "--no-plot"),
                           check=True, capture_output=True, timeout=3600)
        figures = {"vehicle": vehicle, "cycle": one.name, "repeats": REPEATS, "log_format": LOG_SUFFIX}
        for command in ("run", "replay"):
            timed = {}
            for label, (name, duration, count) in drives.items():
                args = (["run", "--vehicle", vehicle, "--cycle", name] if command == "run"
                        else ["replay", str(logs[label])])
                timed[label] = _timed(_keidrive(*args, "--json"), duration, count)
            figures[command] = _pair(timed["1x"], timed[f"{REPEATS}x"])
    return figures


def print_scale(figures: dict) -> None:
    many = f"{figures['repeats']}x"
    print(f"scale, {figures['vehicle']} on {figures['cycle']} and {many} over, whole processes as a user starts them"
          f" (replay of {figures['log_format']} logs):")
    for command in ("run", "replay"):
        pair = figures[command]
        for label in ("1x", many):
            m = pair[label]
            cpu = ", ".join(f"{name} {seconds:.2f} s ({m['cpu_share'][name] * 100:.0f} %)"
                            for name, seconds in m["cpu_s"].items())
            print(f"  {command:<7}{label:>4}  {m['frames']:>9} frames  wall {m['wall_s']:>7.2f} s"
                  f" (median {m['wall_s_median']:.2f} of {m['runs']})  {m['realtime_factor']:>5}x real time"
                  f"  peak RSS {m['peak_rss_mib']:>6.1f} MiB  load {', '.join(map(str, m['load_avg_1min']))}")
            print(f"               CPU: {cpu}")
        print(f"  {command:<7} {many}/1x  peak RSS {pair['peak_rss_ratio']:.3f}  wall {pair['wall_ratio']:.2f}"
              " (target: peak RSS within 10 %)")
