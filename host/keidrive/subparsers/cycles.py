"""keidrive cycles: list the bundled drive cycles."""

from __future__ import annotations

import json


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("cycles", help="list bundled drive cycles (duration, distance, top speed)",
                              description="List the bundled drive cycles. Any CSV with time_s and "
                                          "speed_kmh/speed_mph/speed_mps (optional grade_pct) works too.")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..sim import list_cycles, load_cycle

    rows = []
    for name in list_cycles():
        c = load_cycle(name)
        rows.append({"name": name, "duration_s": round(c.duration_s, 1), "distance_km": round(c.distance_km, 3),
                     "top_speed_kmh": round(c.top_speed_kmh, 1), "phases": [p[0] for p in c.phases],
                     "description": c.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.table import Table

    from .screen import console
    t = Table(title="Drive cycles")
    for col, j in (("name", "left"), ("duration s", "right"), ("distance km", "right"), ("top km/h", "right"),
                   ("phases", "left"), ("description", "left")):
        t.add_column(col, justify=j)
    for r in rows:
        t.add_row(r["name"], f"{r['duration_s']:.0f}", f"{r['distance_km']:.2f}", f"{r['top_speed_kmh']:.1f}",
                  ", ".join(r["phases"]), r["description"])
    console().print(t)
    return 0
