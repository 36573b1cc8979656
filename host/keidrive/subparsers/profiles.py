"""keidrive profiles: the speed profiles of the warnings, from the firmware's own table."""

from __future__ import annotations

import json

# The profiles whose figures come from config keys rather than the table.
CONFIGURED = {
    "us-interstate": "limit and minimum from config posted_limit_mph and minimum_mph",
    "custom": "limit and minimum from config custom_limit_kmh and custom_minimum_kmh; a highway profile when the "
              "minimum is above 0",
}


def add_subparser(subparsers) -> None:
    parser = subparsers.add_parser(
        "profiles", help="list the speed profiles of the overspeed and below_minimum warnings",
        description="The speed profiles the firmware knows (firmware/keifw/alerts.py), with the limit and "
                    "minimum it applies under the default config.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of {name, limit_kmh, minimum_kmh, notes}")
    parser.set_defaults(func=run)


def profiles() -> list[dict]:
    """Every profile as the firmware's own warning logic sets it up with the default config."""
    from ..fwconfig import firmware_module, speed_limits

    listed = []
    for name, (_code, _limit, _minimum, highway) in firmware_module("alerts").PROFILES.items():
        limits = speed_limits({"profile": name})
        notes = CONFIGURED.get(name) or ("highway: below_minimum applies" if highway else "no minimum speed")
        listed.append({"name": name, "limit_kmh": limits["limit_kmh"], "minimum_kmh": limits["minimum_kmh"],
                       "notes": notes})
    return listed


def run(args) -> int:
    listed = profiles()
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    print(f"{'profile':20} {'limit':>12} {'minimum':>12}  notes")
    for p in listed:
        minimum = f"{p['minimum_kmh']:.1f} km/h" if p["minimum_kmh"] is not None else "-"
        print(f"{p['name']:20} {p['limit_kmh']:>7.1f} km/h {minimum:>12}  {p['notes']}")
    return 0
