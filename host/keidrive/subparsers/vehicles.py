"""keidrive vehicles: list the bundled vehicle presets."""

from __future__ import annotations

import json


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("vehicles", help="list bundled vehicle presets",
                              description="List the bundled vehicle presets (editable TOML files; "
                                          "pass --vehicle path/to/car.toml to use your own).")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)


def _power_kw(v) -> float:
    if v.powertrain == "ev":
        return v.p("motor.max_power_kw")
    rpm, nm = v.p("engine.torque_curve_rpm"), v.p("engine.torque_curve_nm")
    return max(r * t for r, t in zip(rpm, nm)) * 2 * 3.141592653589793 / 60 / 1000


def run(args) -> int:
    from ..sim import list_vehicles, load_vehicle

    rows = []
    for name in list_vehicles():
        v = load_vehicle(name)
        rows.append({"name": name, "powertrain": v.powertrain, "dbc": v.dbc, "test_mass_kg": v.test_mass_kg,
                     "power_kw": round(_power_kw(v), 1), "description": v.description, "file": str(v.path)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.table import Table

    from .screen import console
    t = Table(title="Vehicle presets")
    for col, j in (("name", "left"), ("powertrain", "left"), ("test mass kg", "right"), ("kW", "right"),
                   ("DBC", "left"), ("description", "left")):
        t.add_column(col, justify=j)
    for r in rows:
        t.add_row(r["name"], r["powertrain"], f"{r['test_mass_kg']:.0f}", f"{r['power_kw']:.0f}", r["dbc"],
                  r["description"])
    console().print(t)
    return 0
