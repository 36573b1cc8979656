"""keidrive geo: the state boundaries and kei road rules the firmware carries."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COMMAND = "keidrive geo compile"


def add_subparser(subparsers) -> None:
    parser = subparsers.add_parser(
        "geo",
        help="the jurisdiction boundaries and kei road rules compiled into the firmware",
        description="Compile the US state boundaries (and Japan's) and the kei road rules table into the "
        "firmware's generated modules keifw/geo_us.py and keifw/kei_rules.py, list the rules, or look up a place.",
    )
    sub = parser.add_subparsers(dest="geo_command", metavar="ACTION")
    sub.required = True
    comp = sub.add_parser("compile", help="regenerate keifw/geo_us.py and keifw/kei_rules.py in a checkout")
    comp.add_argument("--source", metavar="FILE.geojson",
                      help="the census state boundaries (default: $KEIDRIVE_US_STATES)")
    comp.add_argument("--tree", type=Path, metavar="CHECKOUT", help="the checkout to regenerate (default: this one)")
    comp.add_argument("--land-m", type=float, default=None, metavar="M", help="land border tolerance (default 250)")
    comp.add_argument("--coast-m", type=float, default=None, metavar="M",
                      help="how far a coast may move out to sea (default 6000)")
    comp.add_argument("--coast-inland-m", type=float, default=None, metavar="M",
                      help="how far a coast may move inland (default 1000)")
    comp.add_argument("--json", action="store_true", help="print the figures as JSON")
    comp.set_defaults(func=_compile)
    rules = sub.add_parser("rules", help="the kei road rules table, with each row's source")
    rules.add_argument("--json", action="store_true", help="as JSON")
    rules.set_defaults(func=_rules)
    where = sub.add_parser("where", help="the jurisdiction and the rule in force at a place (the firmware's code)")
    where.add_argument("lat", type=float, help="latitude, degrees north")
    where.add_argument("lon", type=float, help="longitude, degrees east (west negative)")
    where.add_argument("--date", metavar="YYYY-MM-DD", help="the day (default: the table's as_of)")
    where.set_defaults(func=_where)
    routes = sub.add_parser("routes", help="the bundled routes of keidrive run --route")
    routes.set_defaults(func=_routes)


def _compile(args: argparse.Namespace) -> int:
    from ..dbccompiler import write_module
    from ..gps import boundaries, rules
    from .dbc import _checkout, _readable

    root = _checkout(args.tree)
    options = {}
    if args.land_m is not None:
        options["land_m"] = args.land_m
    if args.coast_m is not None:
        options["coast_m"] = args.coast_m
    if args.coast_inland_m is not None:
        options["coast_inland_m"] = args.coast_inland_m
    command = COMMAND + "".join(f" --{k.replace('_', '-')} {v:g}" for k, v in options.items())
    built = boundaries.build(args.source, **options)
    keifw = root / "firmware" / "keifw"
    for name, text in (("geo_us", boundaries.module_text(built, command)),
                       ("kei_rules", rules.module_text(rules.load(), built.codes, command))):
        write_module(text, keifw / f"{name}.py")
        _readable(keifw / f"{name}.py")
    figures = {**built.figures, "modules": {name: str(keifw / f"{name}.py") for name in ("geo_us", "kei_rules")}}
    figures["mpy_bytes_armv7m"] = {name: _mpy_size(keifw / f"{name}.py") for name in ("geo_us", "kei_rules")}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"boundaries: {figures['arcs']} arcs, {figures['vertices']} vertices; worst land border error "
          f"{figures['border_error_m']} m ({figures['border_error_between']}), coasts {figures['coast_error_m']} m out to "
          f"sea and {figures['coast_inland_error_m']} m inland; "
          f"{figures['islands_dropped']} islands under {figures['min_island_km2']:g} km2 left out")
    for name, size in figures["mpy_bytes_armv7m"].items():
        print(f"{keifw / name}.py: {size} B as armv7m .mpy")
    return 0


def _mpy_size(path: Path) -> int:
    import subprocess
    import tempfile

    from ..runtime import mpy_cross_command

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.mpy"
        subprocess.run([mpy_cross_command(), "-march=armv7m", "-o", str(out), str(path)], check=True,
                       capture_output=True, timeout=120)
        return out.stat().st_size


def _rules(args: argparse.Namespace) -> int:
    from ..gps import rules

    table = rules.load()
    if args.json:
        print(json.dumps({
            "as_of": table.as_of.isoformat(),
            "rules": [{"region": r.region, "kind": r.kind, "limit_kmh": r.limit_kmh,
                       "minimum_kmh": r.minimum_ckmh / 100 or None, "effective": r.effective.isoformat(),
                       "effective_note": r.effective_note or None, "source": r.source, "url": r.url,
                       "checked": r.checked, "limit_why": r.limit_why} for r in table.rules],
            "unverified": list(table.unverified),
        }, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    out = Table(title=f"kei road rules (checked {table.as_of}); elsewhere the profile", title_justify="left")
    for column in ("region", "from", "rule", "limit", "minimum", "checked"):
        out.add_column(column)
    for r in table.rules:
        out.add_row(r.region, r.effective.isoformat(), r.kind, f"{r.limit_kmh:g} km/h ({r.limit_mph:.0f} mph)",
                    f"{r.minimum_ckmh / 100:g} km/h" if r.minimum_ckmh else "-", r.checked)
    console = Console()
    console.print(out)
    for r in table.rules:
        console.print(f"{r.region}: {r.source} <{r.url}>")
    for row in table.unverified:
        console.print(f"not used: {row['region']}: {row['claim']} ({row['why']})")
    return 0


def _where(args: argparse.Namespace) -> int:
    import datetime as dt

    from ..errors import KeidriveError
    from ..gps import locate, rules

    day = None
    if args.date:
        try:
            day = dt.date.fromisoformat(args.date)
        except ValueError:
            raise KeidriveError(f"--date {args.date}: not a YYYY-MM-DD date") from None
    if not (-90 <= args.lat <= 90 and -180 <= args.lon <= 180):
        raise KeidriveError(f"{args.lat}, {args.lon}: not a latitude and longitude")
    region, rule = locate.where(args.lat, args.lon, day)
    later = [r for r in rules.load().rules if r.region == region]
    if region is None:
        print("no jurisdiction in the boundaries here: the profile's rules")
    elif rule is None and later:
        print(f"{region}: its kei rule ({later[0].kind}) is in force from {later[0].effective}: the profile's rules")
    elif rule is None:
        print(f"{region}: no known kei rule: the profile's rules")
    else:
        minimum = f", minimum {rule.minimum_ckmh / 100:g} km/h" if rule.minimum_ckmh else ""
        print(f"{region}: {rule.kind}, limit {rule.limit_kmh:g} km/h ({rule.limit_mph:.0f} mph){minimum} "
              f"since {rule.effective} ({rule.source})")
    sys.stdout.flush()
    return 0


def _routes(args: argparse.Namespace) -> int:
    from ..gps.route import bundled_routes, load_route

    for name in bundled_routes():
        route = load_route(name)
        print(f"{name}: {route.length_km:.1f} km, from {route.start:%Y-%m-%d %H:%M} UTC. {route.description}")
    return 0
