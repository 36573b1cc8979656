"""keidrive calibrate: the volumetric efficiency of OBD-II speed-density fuel
from a fill-up (a drive and the litres on the pump receipt)."""

from __future__ import annotations

import json


def add_subparser(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="learn the volumetric efficiency for OBD-II speed-density fuel from a fill-up",
        description=(
            "Fill the tank, drive, fill it again: the second fill's litres against the firmware's fuel for "
            "the drive give the engine's volumetric efficiency (obd_ve_pct), written into the config."
        ),
    )
    parser.add_argument("--trip", required=True, metavar="FILE",
                        help="the drive: keidrive run --obd --json output, or its --telemetry file")
    parser.add_argument("--litres", required=True, type=float, metavar="L", help="litres on the pump receipt")
    parser.add_argument("--config", required=True, metavar="FILE.json",
                        help="firmware config to update (created if missing; its obd_ve_pct is the one the drive used)")
    parser.add_argument("--json", action="store_true", help="print {ve_pct_before, ve_pct, firmware_fuel_l, litres}")
    parser.set_defaults(func=run)


def run(args) -> int:
    from .. import obdcalibrate as cal

    trip = cal.read_trip(args.trip)
    config = cal.read_config(args.config)
    before = config.get(cal.VE_KEY, cal.VE_DEFAULT)
    ve = cal.calibrate(trip, args.litres, before)
    config[cal.VE_KEY] = ve
    cal.write_config(args.config, config)
    if args.json:
        print(json.dumps({"ve_pct_before": before, "ve_pct": ve, "firmware_fuel_l": trip["fuel_l"],
                          "litres": args.litres}))
    else:
        print(f"obd_ve_pct {before} -> {ve} % (firmware {trip['fuel_l']:.3f} L, pump {args.litres} L); "
              f"written to {args.config}")
    return 0
