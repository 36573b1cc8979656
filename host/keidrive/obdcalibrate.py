"""Volumetric efficiency from a fill-up, for OBD-II speed-density fuel.

Speed density (keifw/obdfuel.py) computes air from manifold pressure,
temperature, rpm and displacement times a volumetric efficiency the ECU
does not report. Fuel is proportional to it, so one fill-up calibrates it:
the firmware's fuel over a drive against the litres the pump put back gives

    VE_new = VE_used x litres_pumped / litres_firmware

(``obd_ve_pct``, whole percent, within the config's 30..120). The drive is
the firmware's trip: the JSON of ``keidrive run --obd --json`` or its
telemetry (``--telemetry FILE``: the last ``trip`` line).
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import KeidriveError
from .fwconfig import require_valid

VE_KEY = "obd_ve_pct"
VE_DEFAULT = 80  # the firmware's default (keifw/config.py)
VE_RANGE = (30, 120)


def read_config(path) -> dict:
    """A firmware config file as a dict (every key checked); {} when absent."""
    p = Path(path)
    if not p.exists():
        return {}
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError) as error:
        raise KeidriveError(f"config {p}: not a readable JSON file ({error})") from None
    if not isinstance(obj, dict):
        raise KeidriveError(f"config {p}: not a JSON object")
    return require_valid(obj)


def read_trip(path) -> dict:
    """The firmware's trip from ``keidrive run --json`` output or a telemetry file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as error:
        raise KeidriveError(f"trip {p}: cannot read it ({error})") from None
    trip = None
    try:
        obj = json.loads(text)
        trip = obj.get("firmware") if isinstance(obj, dict) else None
    except ValueError:
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("type") == "trip":
                trip = event
    if not isinstance(trip, dict) or not isinstance(trip.get("fuel_l"), (int, float)):
        raise KeidriveError(f"trip {p}: no firmware trip with fuel_l (keidrive run --obd --json, or its telemetry)")
    if trip.get("fuel_method") != "obd_speed_density":
        raise KeidriveError(
            f"trip {p}: fuel method is {trip.get('fuel_method')!r}; only obd_speed_density uses a volumetric efficiency"
        )
    if trip["fuel_l"] <= 0:
        raise KeidriveError(f"trip {p}: the firmware counted no fuel; nothing to calibrate against")
    return trip


def calibrate(trip: dict, litres: float, ve_used: int) -> int:
    """The volumetric efficiency (whole %) that makes the trip's fuel the pumped litres."""
    if not litres > 0:
        raise KeidriveError(f"--litres must be a positive number of litres, got {litres}")
    ve = round(ve_used * litres / trip["fuel_l"])
    if not VE_RANGE[0] <= ve <= VE_RANGE[1]:
        raise KeidriveError(
            f"the fill-up gives a volumetric efficiency of {ve} % (firmware {trip['fuel_l']:.3f} L, pump {litres} L), "
            f"outside {VE_RANGE[0]}..{VE_RANGE[1]} %: is it the same drive and a full tank both times?"
        )
    return ve


def write_config(path, config: dict) -> None:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        tmp.replace(p)
    except OSError as error:
        raise KeidriveError(f"cannot write config {p}: {error.strerror}") from None
