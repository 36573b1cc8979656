"""Robustness figures: random frames, faults over drives, a flood, power cuts.

* ``random_frames``: frames of random IDs (11 and 29 bit, 30 % of them the
  vehicle's own IDs with the right DLC half the time), DLC 0-8, random data,
  3 % error and 3 % remote frames, at the rate of a saturated 500 kbit/s bus,
  into the firmware (MicroPython, stdin, virtual clock), split over the three
  vehicle modules, with the most sensitive warning settings the config allows
  (a custom 10 km/h limit, 2000 rpm, 10 kPa boost, 80 degC coolant): any
  garbage taken for valid data would warn. Rejected frames are counted by
  kind on the host and checked against the firmware's own counters.
* ``exceptions``: firmware runs that raised, exited non-zero, printed a
  non-JSON line or ended without a trip summary (random frames, every fault
  scenario, every boot of the power-cut runs).
* ``false_warnings``: warnings raised from random frames alone, plus, over
  every fault scenario on a real drive, warnings the faulted drive raised
  that the same drive without the fault did not (same kind and level,
  starting within 1 s).
* ``power_cuts`` / ``corrupt_loads`` / ``max_lost_s``: see
  ``keidrive.faults.run_with_power_cuts`` (SIGKILL between frames, around
  saves, and saves torn at a random byte); lost = trip time delivered to the
  device minus trip time restored at the next boot, ``save_interval_s`` 10
  (the smallest the config allows: the most saves to cut).
* ``flood_latency_ms_p99``: a stretch of highway driving with ID 0x000
  taking every bit the car leaves free on a 500 kbit/s bus (100 % load),
  played in real time into the firmware's stream loop (``Firmware.records``
  on the real clock, as ``app.run_stream``) inside MicroPython: latency =
  from a frame's arrival time to the end of the ``records()`` call that
  processed it; the 99th percentile over every frame of the window.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import faults, sim
from ..drive.harness import firmware_config, run_records
from ..io import record

MODULES = ("kei_turbo_660", "kei_hybrid_660", "kei_ev")
SENSITIVE = {"profile": "custom", "custom_limit_kmh": 10, "custom_minimum_kmh": 0, "rpm_limit": 2000,
             "boost_limit_kpa": 10, "coolant_limit_c": 80}
SAVE_INTERVAL_S = 10


def _crashed(report) -> bool:
    consoles = [e for e in report.events if e.get("type") == "console"]
    return (report.returncode != 0 or report.timed_out or report.trip is None or "Traceback" in report.stderr
            or bool(consoles))


def rejected_by_kind(records: np.ndarray, module: str) -> dict:
    """What a correct firmware must reject in ``records``, by kind (host side)."""
    known = {(i, e): n for i, e, n in faults.known_ids(module)}
    fl = records["flags"]
    error = (fl & record.FLAG_ERROR) != 0
    remote = ((fl & record.FLAG_REMOTE) != 0) & ~error
    frames = ~(error | remote)
    ids = records["can_id"].astype(np.int64)
    ext = (fl & record.FLAG_EXTENDED) != 0
    is_known = np.zeros(len(records), bool)
    right_dlc = np.zeros(len(records), bool)
    for (i, e), n in known.items():
        m = (ids == i) & (ext == bool(e))
        is_known |= m
        right_dlc |= m & (records["dlc"] == n)
    return {
        "error": int(error.sum()),
        "remote": int(remote.sum()),
        "unknown_id": int((frames & ~is_known).sum()),
        "wrong_dlc": int((frames & is_known & ~right_dlc).sum()),
        "known_id_right_dlc": int((frames & is_known & right_dlc).sum()),
    }


def random_frame_figures(count: int = 1_000_000, seed: int = 1, runtime: str = "micropython") -> dict:
    out = {"random_frames": 0, "exceptions": 0, "false_warnings": 0, "runs": []}
    rng = np.random.default_rng(seed)
    for k, module in enumerate(MODULES):
        per = count // len(MODULES) + (1 if k < count % len(MODULES) else 0)
        recs = faults.random_frames(per, rng, known_ids=faults.known_ids(module))
        report = run_records(recs.tobytes(), dict(SENSITIVE, vehicle=module), runtime=runtime, timeout=600)
        kinds = rejected_by_kind(recs, module)
        trip = report.trip or {}
        crashed = _crashed(report)
        run = {
            "vehicle": module,
            "frames": len(recs),
            "rejected": kinds,
            "firmware": {k: trip.get(k) for k in ("frames", "unknown_frames", "skipped_frames", "bad_frames")},
            "warnings": len(report.warnings),
            "signals_valid_from_garbage": sum(1 for e in report.signals if e["state"] == "lost"),
            "counters_agree": (not crashed and trip.get("frames") == len(recs)
                               and trip.get("unknown_frames") == kinds["unknown_id"]
                               and trip.get("skipped_frames") == kinds["error"] + kinds["remote"]
                               and kinds["wrong_dlc"] <= trip.get("bad_frames", -1)
                               <= kinds["wrong_dlc"] + kinds["known_id_right_dlc"]),
            "crashed": crashed,
        }
        if crashed:
            run["failure"] = report.failure()
        out["runs"].append(run)
        out["random_frames"] += len(recs)
        out["exceptions"] += int(crashed)
        out["false_warnings"] += len(report.warnings)
    return out


# --- fault scenarios over real drives -------------------------------------------------


def scenarios(duration_s: float) -> list:
    """(name, faults) over a drive of ``duration_s``: every traffic fault."""
    d = duration_s
    return [
        ("drop_speed_30s", [faults.Drop(0x1A0, 0.3 * d, 30.0)]),
        ("drop_all_5s", [faults.Drop(None, 0.5 * d, 5.0)]),
        ("corrupt_counter_speed", [faults.CorruptCounter(0x1A0, 0.2 * d, 20.0)]),
        ("corrupt_counter_half", [faults.CorruptCounter(0x130, 0.1 * d, 0.6 * d, share=0.5)]),
        ("corrupt_checksum_speed", [faults.CorruptChecksum(0x1A0, 0.4 * d, 20.0)]),
        ("corrupt_checksum_sparse", [faults.CorruptChecksum(0x130, 0.0, d, share=0.2)]),
        ("wrong_dlc", [faults.WrongDlc(None, 0.6 * d, 10.0, share=0.5)]),
        ("error_remote_frames", [faults.ErrorFrames(200.0, 0.0, d), faults.RemoteFrames(200.0, 0.0, d)]),
        ("random_frames", [faults.RandomFrames(int(100 * d), 0.0, d)]),
        ("flood_100pct_60s", [faults.Flood(0x000, 1.0, 0.5 * d, 60.0)]),
        ("timestamp_jump_forward", [faults.TimestampJump(0.5 * d, 20.0)]),
        ("timestamp_jump_back", [faults.TimestampJump(0.5 * d, -5.0)]),
        ("bus_off_2s", [faults.BusOff(0.7 * d, 2.0)]),
        ("everything", [faults.CorruptChecksum(0x130, 0.0, d, share=0.1), faults.WrongDlc(0x140, 0.0, d, share=0.05),
                        faults.ErrorFrames(50.0, 0.0, d), faults.RandomFrames(int(20 * d), 0.0, d),
                        faults.Drop(0x1A0, 0.25 * d, 3.0)]),
    ]


def false_warnings(clean: list, faulted: list, slack_s: float = 1.0) -> list:
    """Warnings of ``faulted`` (trip warnings: kind, level, start_s, end_s)
    that overlap no warning of the same kind and level in ``clean``, widened
    by ``slack_s`` each side: a warning the fault delayed, cut short or split
    (the data was missing) is the clean drive's warning; one where the clean
    drive had none, or at a higher level, is false."""
    big = float("inf")
    out = []
    for w in faulted:
        start, end = w["start_s"], big if w["end_s"] is None else w["end_s"]
        if not any(c["kind"] == w["kind"] and c["level"] == w["level"]
                   and start <= (big if c["end_s"] is None else c["end_s"]) + slack_s
                   and end >= c["start_s"] - slack_s for c in clean):
            out.append(w)
    return out


def scenario_figures(drives=(("nbox-turbo", "us06", "us-interstate"), ("alto-hybrid", "hwfet", "us-minitruck-55"),
                             ("sakura-ev", "wltc-jp", "jp-expressway")),
                     seed: int = 2, runtime: str = "micropython") -> dict:
    out = {"runs": 0, "exceptions": 0, "false_warnings": 0, "details": []}
    for vehicle, cycle, profile in drives:
        result = sim.simulate(vehicle, cycle)
        recs = record.from_frames(result.frames)
        config = firmware_config(vehicle, profile)
        clean = run_records(recs.tobytes(), config, runtime=runtime)
        assert clean.ok, clean.failure()
        base = clean.trip
        for name, fs in scenarios(result.truth["duration_s"]):
            if vehicle == "sakura-ev":  # its messages: no 0x130 / 0x140
                fs = [f for f in fs if getattr(f, "can_id", None) not in (0x130, 0x140)]
            if not fs:
                continue
            fs = [replace(f, dbc=config["vehicle"]) if hasattr(f, "dbc") else f for f in fs]
            faulted = faults.apply(recs, fs, seed)
            report = run_records(faulted.tobytes(), config, runtime=runtime)
            crashed = _crashed(report)
            # a timestamp jump shifts the trip clock (t_s counts ticks) by up to the jump
            slack = 1.0 + max((abs(f.jump_s) for f in fs if isinstance(f, faults.TimestampJump)), default=0.0)
            false = [] if crashed else false_warnings(base["warnings"], report.trip["warnings"], slack)
            trip = report.trip or {}
            # a fault never adds driving: distance and fuel at most the clean drive's
            adds = (not crashed) and (trip["distance_km"] > base["distance_km"] * 1.0005 + 1e-6
                                      or (base["fuel_l"] is not None
                                          and trip["fuel_l"] > base["fuel_l"] * 1.0005 + 1e-6))
            out["runs"] += 1
            out["exceptions"] += int(crashed)
            out["false_warnings"] += len(false)
            out["details"].append({
                "drive": f"{vehicle}/{cycle}/{profile}", "scenario": name, "crashed": crashed,
                "false_warnings": false, "added_driving": adds,
                "distance_km": trip.get("distance_km"), "clean_distance_km": base["distance_km"],
                "bad_frames": trip.get("bad_frames"), "unknown_frames": trip.get("unknown_frames"),
                "skipped_frames": trip.get("skipped_frames"),
                "failure": report.failure() if crashed else "",
            })
    return out


# --- power cuts -------------------------------------------------------------------------


def power_cut_figures(cuts: int = 200, seed: int = 3, drives=(("nbox-turbo", "wltc-jp"), ("alto-hybrid", "wltc-jp"),
                                                                 ("sakura-ev", "wltc-jp"), ("alto-na", "wltc-jp")),
                      runtime: str = "micropython") -> dict:
    rng = np.random.default_rng(seed)
    per = [cuts // len(drives) + (1 if k < cuts % len(drives) else 0) for k in range(len(drives))]
    out = {"power_cuts": 0, "corrupt_loads": 0, "max_lost_s": 0.0, "exceptions": 0, "by_mode": {},
           "save_interval_s": SAVE_INTERVAL_S, "notes": [], "final_ok": True}
    for (vehicle, cycle), count in zip(drives, per):
        if count == 0:
            continue
        recs = record.from_frames(sim.simulate(vehicle, cycle).frames)
        config = firmware_config(vehicle, "jp-expressway", {"save_interval_s": SAVE_INTERVAL_S})
        plan = faults.plan_cuts(recs, count, SAVE_INTERVAL_S, rng)
        # plan_cuts may merge cut points that fall too close: top up with idle cuts
        while len(plan) < count:
            extra = faults.plan_cuts(recs, count - len(plan), SAVE_INTERVAL_S, rng, shares=(1, 0, 0))
            have = {i for i, _ in plan}
            plan = sorted(plan + [c for c in extra if c[0] not in have])[:count]
        report = faults.run_with_power_cuts(recs, config, plan, runtime=runtime, seed=int(rng.integers(1 << 31)))
        out["power_cuts"] += len(report.cuts)
        out["corrupt_loads"] += report.corrupt_loads
        out["exceptions"] += report.exceptions
        out["max_lost_s"] = max(out["max_lost_s"], report.max_lost_s)
        for cut in report.cuts:
            mode = out["by_mode"].setdefault(cut.mode, {"cuts": 0, "max_lost_s": 0.0})
            mode["cuts"] += 1
            mode["max_lost_s"] = max(mode["max_lost_s"], cut.lost_s)
            mode["torn_by_kill"] = mode.get("torn_by_kill", 0) + int(cut.torn_by_kill)
            if cut.corrupt:
                out["notes"].append(f"{vehicle}: cut at record {cut.index} ({cut.mode}): {cut.note}")
        if report.final is None or not report.final.ok:
            out["final_ok"] = False
    out["max_lost_s"] = round(out["max_lost_s"], 1)
    return out


# --- flood latency ------------------------------------------------------------------------

_LATENCY_SCRIPT = r"""
import sys, time, array, micropython
sys.path.insert(0, sys.argv[1])
from keifw import app
class Null:
    def write(self, b, n=None):
        return n
data = open(sys.argv[2], "rb").read()
n = len(data) // 24
cfg = {"vehicle": sys.argv[3], "profile": "jp-expressway"}
fw, _ = app.build(cfg_obj=cfg, out=Null())
K = 256
buf = bytearray(K * 24)
dm = memoryview(data)
arr = array.array("i", bytes(4 * n))
for k in range(n):
    o = k * 24
    arr[k] = data[o] | (data[o + 1] << 8) | (data[o + 2] << 16) | (data[o + 3] << 24)
lat = array.array("i", bytes(4 * n))
ticks_us = time.ticks_us
ticks_diff = time.ticks_diff
now_us = app.now_us
start = ticks_us()
i = 0
while i < n:
    now = ticks_diff(ticks_us(), start)
    j = i
    while j < n and j - i < K and arr[j] <= now:
        j += 1
    if j == i:
        continue
    m = j - i
    buf[0:m * 24] = dm[i * 24:j * 24]
    fw.clock(now_us())
    fw.records(buf, m, False)
    done = ticks_diff(ticks_us(), start)
    for k in range(i, j):
        lat[k] = done - arr[k]
    i = j
open(sys.argv[4], "wb").write(lat)
print(fw.frames, fw.unknown)
"""


def flood_figures(vehicle: str = "nbox-turbo", cycle: str = "hwfet", window_s: float = 10.0, at_s: float = 300.0,
                  load: float = 1.0, micropython: str | None = None) -> dict:
    """Latency p99 (ms) of the stream loop in real time, with and without the
    flood, and the flooded whole drive's trip totals against the clean one."""
    from ..paths import firmware_dir
    from ..runtime import micropython_command

    result = sim.simulate(vehicle, cycle)
    recs = record.from_frames(result.frames)
    module = firmware_config(vehicle)["vehicle"]
    flood = faults.Flood(0x000, load, at_s, window_s)
    flooded = faults.apply(recs, [flood], 5)
    lat = {}
    with tempfile.TemporaryDirectory(prefix="keidrive-flood-") as tmp:
        script = Path(tmp) / "lat.py"
        script.write_text(_LATENCY_SCRIPT)
        for name, source in (("flood", flooded), ("clean", recs)):
            win = source[faults.traffic._window(source, at_s, window_s)].copy()
            win["timestamp_us"] -= np.uint64(int(at_s * 1e6))
            path = Path(tmp) / f"{name}.bin"
            path.write_bytes(win.tobytes())
            out = Path(tmp) / f"{name}.lat"
            proc = subprocess.run([micropython or micropython_command(), "-X", "heapsize=64M", str(script),
                                   str(firmware_dir()), str(path), module, str(out)],
                                  capture_output=True, text=True, timeout=window_s + 120)
            if proc.returncode != 0:
                raise RuntimeError(f"flood latency run failed: {proc.stderr.strip()[-500:]}")
            values = np.frombuffer(out.read_bytes(), dtype="<i4") / 1000.0
            lat[name] = {"frames": len(win), "p50_ms": round(float(np.percentile(values, 50)), 3),
                         "p99_ms": round(float(np.percentile(values, 99)), 3),
                         "max_ms": round(float(values.max()), 3)}
    config = firmware_config(vehicle, "jp-expressway")
    clean = run_records(recs.tobytes(), config)
    drive = run_records(flooded.tobytes(), config)
    n_flood = int((flooded["can_id"] == 0).sum() - (recs["can_id"] == 0).sum())
    start, end = faults.bus_occupancy(flooded[faults.traffic._window(flooded, at_s, window_s)])
    busy = float(np.sum(end - start)) / (window_s * 1e6)
    return {
        "flood_frames": n_flood,
        "flood_bus_load": round(busy, 3),
        "latency_flood": lat["flood"],
        "latency_clean": lat["clean"],
        "crashed": _crashed(drive),
        "unknown_frames": (drive.trip or {}).get("unknown_frames"),
        "distance_km": (drive.trip or {}).get("distance_km"),
        "clean_distance_km": clean.trip["distance_km"],
        "fuel_l": (drive.trip or {}).get("fuel_l"),
        "clean_fuel_l": clean.trip["fuel_l"],
        "false_warnings": [] if _crashed(drive) else false_warnings(clean.trip["warnings"], drive.trip["warnings"]),
    }


def robustness_figures(random_frames: int = 1_000_000, power_cuts: int = 200, flood_window_s: float = 10.0,
                       scenario_drives=None, runtime: str = "micropython") -> dict:
    """The robustness figures: the issue's eight keys first, then details."""
    started = time.perf_counter()
    rnd = random_frame_figures(random_frames, runtime=runtime)
    scen = scenario_figures(runtime=runtime) if scenario_drives is None else scenario_figures(scenario_drives,
                                                                                             runtime=runtime)
    flood = flood_figures(window_s=flood_window_s)
    cuts = power_cut_figures(power_cuts, runtime=runtime)
    figures = {
        "random_frames": rnd["random_frames"],
        "exceptions": rnd["exceptions"] + scen["exceptions"] + cuts["exceptions"] + int(flood["crashed"]),
        "false_warnings": rnd["false_warnings"] + scen["false_warnings"] + len(flood["false_warnings"]),
        "power_cuts": cuts["power_cuts"],
        "corrupt_loads": cuts["corrupt_loads"],
        "max_lost_s": cuts["max_lost_s"],
        "save_interval_s": cuts["save_interval_s"],
        "flood_latency_ms_p99": flood["latency_flood"]["p99_ms"],
    }
    details = {"random": rnd, "scenarios": scen, "flood": flood, "power_cuts": cuts,
               "wall_s": round(time.perf_counter() - started, 1)}
    return {"figures": figures, "details": details}


def summary(result: dict) -> str:
    return json.dumps(result["figures"])
