"""The trip report of a firmware-in-the-loop run: a terminal table (ground
truth beside the firmware's figures, eco score, warnings timeline), the
machine-readable form behind ``--json`` (the plot: ``keidrive.plot``)."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where a report is printed: the library's figures never need it
    from rich.console import Console

# (label, truth key, firmware trip key, format)
FIGURES = (
    ("distance", "distance_km", "distance_km", "{:.3f} km"),
    ("fuel", "fuel_l", "fuel_l", "{:.3f} L"),
    ("economy", "km_per_l", "km_per_l", "{:.2f} km/L"),
    ("consumption", "l_per_100km", "l_per_100km", "{:.2f} L/100 km"),
    ("economy (US)", "mpg_us", "mpg_us", "{:.1f} mpg"),
    ("pack energy", "energy_kwh", "energy_kwh", "{:.3f} kWh"),
)

# A relative difference means something only for a figure many printed steps
# from zero: below this many, the difference is given in the figure's unit.
RELATIVE_FROM_STEPS = 100


def runtime_line(runtime: str, executable: str) -> str:
    """The report's line naming what the firmware ran in."""
    return f"runtime: {runtime} ({executable})" if runtime != executable else f"runtime: {executable}"


class TripSoFar:
    """Fed every telemetry event (an ``on_event``): the trip up to the
    firmware's last status line. As a context around a drive, it prints
    that on stderr when the drive is stopped before its end (Ctrl-C,
    SIGTERM, SIGHUP)."""

    def __init__(self):
        self.status: dict | None = None

    def __enter__(self):
        return self

    def __exit__(self, kind, _value, _traceback):
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            print(f"keidrive: {self.line()}", file=sys.stderr)

    def __call__(self, event: dict) -> None:
        if event.get("type") == "status":
            self.status = event

    def line(self) -> str:
        s = self.status
        if s is None:
            return "trip so far: none (the firmware had not reported a status line yet)"
        figures = [f"{s['t_s']:.1f} s", f"{s['distance_km']:.3f} km"]
        if s.get("fuel_l") is not None:
            figures.append(f"{s['fuel_l']:.3f} L")
        if s.get("energy_kwh") is not None:
            figures.append(f"{s['energy_kwh']:.3f} kWh")
        if s.get("warnings"):
            figures.append("warnings " + ", ".join(s["warnings"]))
        return "trip so far (the firmware's last status line): " + ", ".join(figures)


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


def _error(truth_value, firmware_value, fmt: str) -> str:
    """The firmware's difference from the truth: relative, or in the
    figure's unit for a truth near zero (-0.012 kWh vs -0.011 kWh is not -9 %)."""
    if truth_value is None or firmware_value is None:
        return ""
    digits = int(re.search(r"\.(\d)f", fmt).group(1))
    if abs(truth_value) >= RELATIVE_FROM_STEPS * 10 ** -digits:
        return f"{(firmware_value - truth_value) / truth_value * 100:+.2f} %"
    return fmt.replace("{:", "{:+").format(firmware_value - truth_value)


def print_report(trip: dict, truth: dict | None, console: Console, title: str,
                 columns: tuple = ("ground truth", "firmware vs physics")) -> None:
    """The firmware's figures, beside ``truth`` (its column and the
    difference's named by ``columns``) where there is one."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    if truth is not None:
        table.add_column("figure")
        table.add_column(columns[0], justify="right")
        table.add_column("firmware", justify="right")
        table.add_column(columns[1], justify="right")
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
            cells.append(_error(theirs, ours, fmt))
        table.add_row(label, *cells)
    if trip.get("wh_per_km") is not None:
        row = ["electric consumption"]
        if truth is not None:
            truth_wh = truth["energy_kwh"] * 1000 / truth["distance_km"] if truth.get("distance_km") else None
            row += [f"{truth_wh:.1f} Wh/km" if truth_wh else "-", f"{trip['wh_per_km']:.1f} Wh/km",
                    _error(truth_wh, trip["wh_per_km"], "{:.1f} Wh/km")]
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

