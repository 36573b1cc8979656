"""The trip report of a firmware-in-the-loop run: a terminal table (ground
truth beside the firmware's figures, eco score, warnings timeline), the
machine-readable form behind ``--json``, and a PNG plot."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from .errors import KeidriveError

# (label, truth key, firmware trip key, format)
FIGURES = (
    ("distance", "distance_km", "distance_km", "{:.3f} km"),
    ("fuel", "fuel_l", "fuel_l", "{:.3f} L"),
    ("economy", "km_per_l", "km_per_l", "{:.2f} km/L"),
    ("consumption", "l_per_100km", "l_per_100km", "{:.2f} L/100 km"),
    ("economy (US)", "mpg_us", "mpg_us", "{:.1f} mpg"),
    ("pack energy", "energy_kwh", "energy_kwh", "{:.3f} kWh"),
)

PLOT_SUFFIXES = (".png", ".pdf", ".svg")

LEVEL_COLOURS = {"advisory": "#f2c94c", "caution": "#f2994a", "critical": "#eb5757"}


def check_plot_path(path: str | Path) -> Path:
    """The plot path, or one clear error before any work is done: a format
    matplotlib writes here, an existing, writable folder."""
    import os

    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise KeidriveError(f"--plot wants a {', '.join(PLOT_SUFFIXES)} file, got {str(path)!r}")
    parent = path.parent
    if not parent.is_dir():
        raise KeidriveError(f"cannot write plot {path}: directory {parent} does not exist")
    if path.is_dir():
        raise KeidriveError(f"cannot write plot {path}: is a directory")
    if not os.access(path if path.exists() else parent, os.W_OK):
        raise KeidriveError(f"cannot write plot {path}: permission denied")
    return path


def runtime_line(runtime: str, executable: str) -> str:
    """The report's line naming what the firmware ran in."""
    return f"runtime: {runtime} ({executable})" if runtime != executable else f"runtime: {executable}"


def quality(trip: dict) -> dict | None:
    """``--json``'s ``quality``: the trip line's (docs/firmware.md, "Data
    quality"), with the OBD-II client's word on its ECUs where it polled."""
    found = trip.get("quality")
    if found is None:
        return None
    obd = trip.get("obd")
    return {**found, **({"obd": {k: obd[k] for k in ("engine_ecu", "ecus", "fuel_fallbacks") if k in obd}}
                        if obd else {})}


def firmware_figures(trip: dict) -> dict:
    """The firmware's side of ``keidrive run --json``."""
    return {
        "distance_km": trip.get("distance_km"),
        "fuel_l": trip.get("fuel_l"),
        "km_per_l": trip.get("km_per_l"),
        "energy_kwh": trip.get("energy_kwh"),
        "eco_score": trip.get("eco_score"),
        "warnings": [
            {"kind": w["kind"], "level": w["level"], "start_s": w["start_s"], "end_s": w["end_s"]}
            for w in trip.get("warnings", [])
        ],
        **({"fuel_method": trip["fuel_method"], "obd": trip["obd"]} if "obd" in trip else {}),
    }


NOT_MEASURED = "—"  # a figure that could not be computed


def _shown(value, fmt: str) -> str:
    return fmt.format(value) if value is not None else NOT_MEASURED


def quality_line(trip: dict) -> str:
    """The report's data-quality row: where the distance came from, what
    was not measured and why (the trip line's ``quality``)."""
    q = trip.get("quality")
    if q is None:
        return "data quality: not reported by this firmware"
    parts = []
    sources = q.get("sources") or []
    if sources:
        parts.append("speed from " + ", ".join(f"{s['source']} {s['lead_s']:.1f} s" for s in sources))
    if q.get("fallback_s"):
        parts.append(f"{q['fallback_km']:.3f} km in {q['fallback_s']:.1f} s from a fallback source")
    if q.get("untrusted_s"):
        parts.append(f"{q['untrusted_s']:.1f} s without a trusted speed (no distance counted)")
    rejected = {k: n for k, n in (q.get("rejected") or {}).items() if n}
    if rejected:
        parts.append("frames rejected: " + ", ".join(f"{k} {n}" for k, n in rejected.items()))
    for f in q.get("faulty") or []:
        parts.append(f"faulty: {f['source']} ({f['reason']}, {f['s']:.1f} s)")
    if q.get("not_measured"):
        parts.append("not measured: " + ", ".join(q["not_measured"]))
    obd = trip.get("obd") or {}
    if obd.get("engine_ecu"):
        ignored = [f"{e['id']} ({e['ignored']})" for e in obd.get("ecus", []) if e.get("ignored")]
        parts.append(f"OBD-II engine ECU {obd['engine_ecu']}" + (f", ignored {', '.join(ignored)}" if ignored else ""))
    for fb in obd.get("fuel_fallbacks") or []:
        parts.append(f"fuel method {fb['method']} given up: {fb['pid']} from {fb['ecu']} missing or implausible")
    return "data quality: " + ("; ".join(parts) if parts else "nothing rejected, no source faulty")


def _error(truth_value, firmware_value) -> str:
    if not truth_value or firmware_value is None:
        return ""
    return f"{(firmware_value - truth_value) / truth_value * 100:+.2f} %"


def print_report(trip: dict, truth: dict | None, console: Console, title: str) -> None:
    table = Table(title=title, title_justify="left")
    if truth is not None:
        table.add_column("figure")
        table.add_column("ground truth", justify="right")
        table.add_column("firmware", justify="right")
        table.add_column("firmware vs physics", justify="right")
    else:
        table.add_column("figure")
        table.add_column("firmware", justify="right")
    electric = trip.get("fuel_l") in (None, 0) and (trip.get("energy_kwh") or 0) != 0
    for label, truth_key, trip_key, fmt in FIGURES:
        ours = trip.get(trip_key)
        theirs = truth.get(truth_key) if truth is not None else None
        if ours is None and theirs is None:
            continue
        if electric and truth_key in ("fuel_l", "km_per_l", "l_per_100km", "mpg_us"):
            continue
        if truth_key == "energy_kwh" and not ours and not theirs:
            continue  # a car without a traction or 12 V lithium pack
        cells = [fmt.format(v) if v is not None else NOT_MEASURED
                 for v in ((theirs, ours) if truth is not None else (ours,))]
        if truth is not None:
            cells.append(_error(theirs, ours))
        table.add_row(label, *cells)
    if trip.get("wh_per_km") is not None:
        row = ["electric consumption"]
        if truth is not None:
            truth_wh = truth["energy_kwh"] * 1000 / truth["distance_km"] if truth.get("distance_km") else None
            row += [f"{truth_wh:.1f} Wh/km" if truth_wh else "-", f"{trip['wh_per_km']:.1f} Wh/km",
                    _error(truth_wh, trip["wh_per_km"])]
        else:
            row.append(f"{trip['wh_per_km']:.1f} Wh/km")
        table.add_row(*row)
    console.print(table)
    line = f"eco score [bold]{_shown(trip.get('eco_score'), '{}')}[/bold]"
    if not electric:
        line += f"   idle {trip.get('idle_s', 0):.0f} s ({_shown(trip.get('idle_fuel_l'), '{:.3f} L')})"
    if trip.get("idle_stop_s"):
        line += f"   idle-stop {trip['idle_stop_s']:.0f} s"
    if trip.get("regen_kwh"):
        line += f"   regenerated {trip['regen_kwh']:.3f} kWh"
    if trip.get("mpge"):
        line += f"   {trip['mpge']:.0f} MPGe"
    console.print(line)
    console.print(quality_line(trip), highlight=False)
    warnings = trip.get("warnings", [])
    if not warnings:
        console.print("warnings: none")
        return
    timeline = Table(title="warnings", title_justify="left")
    for column in ("kind", "level", "start s", "end s", "lasted s"):
        timeline.add_column(column, justify="right" if column.endswith("s") else "left")
    for w in warnings:
        end = w.get("end_s")
        timeline.add_row(
            w["kind"], w["level"], f"{w['start_s']:.1f}",
            f"{end:.1f}" if end is not None else "-",
            f"{end - w['start_s']:.1f}" if end is not None else "-",
        )
    console.print(timeline)


def plot(path: str | Path, statuses: list, trip: dict, trace: dict | None = None, title: str = "") -> Path:
    """Speed with the warnings as bands, instantaneous and trip economy, and
    engine (or motor) speed, on one time axis; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = check_plot_path(path)
    times = [s["t_s"] for s in statuses]
    figure, (speed_ax, economy_ax, engine_ax) = plt.subplots(3, 1, figsize=(12, 8), sharex=True)
    if trace is not None:
        speed_ax.plot(trace["time_s"], trace["target_kmh"], color="#bbbbbb", lw=1, label="cycle")
        speed_ax.plot(trace["time_s"], trace["speed_kmh"], color="#2d6cdf", lw=1, label="vehicle")
    else:
        speed_ax.plot(times, [s.get("speed_kmh") for s in statuses], color="#2d6cdf", lw=1, label="vehicle")
    for w in trip.get("warnings", []):
        end = w["end_s"] if w.get("end_s") is not None else (times[-1] if times else w["start_s"])
        speed_ax.axvspan(w["start_s"], end, color=LEVEL_COLOURS.get(w["level"], "#cccccc"), alpha=0.35, lw=0)
        speed_ax.text(w["start_s"], speed_ax.get_ylim()[1] * 0.92, w["kind"], fontsize=7, rotation=90, va="top")
    speed_ax.set_ylabel("speed km/h")
    speed_ax.legend(loc="upper left", fontsize=8)

    electric = trip.get("km_per_l") is None
    if electric:
        economy_ax.plot(times, [s.get("wh_per_km") for s in statuses], color="#27ae60", lw=1, label="trip Wh/km")
        economy_ax.set_ylabel("Wh/km")
    else:
        economy_ax.plot(times, [s.get("instant_km_per_l") for s in statuses], color="#9b51e0", lw=0.8,
                        label="instant km/L")
        economy_ax.plot(times, [s.get("trip_km_per_l") for s in statuses], color="#27ae60", lw=1.5,
                        label="trip km/L")
        economy_ax.set_ylabel("km/L")
        economy_ax.set_ylim(0, 60)
    economy_ax.legend(loc="upper left", fontsize=8)

    if trace is not None:
        rpm = trace.get("engine_rpm", trace.get("motor_rpm"))
        engine_ax.plot(trace["time_s"], rpm, color="#e67e22", lw=0.8)
        engine_ax.set_ylabel("engine rpm" if "engine_rpm" in trace else "motor rpm")
    engine_ax.set_xlabel("time s")
    figure.suptitle(title)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=110)
    except (OSError, ValueError) as error:
        raise KeidriveError(f"cannot write plot {path}: {getattr(error, 'strerror', None) or error}") from None
    finally:
        plt.close(figure)
    return path
