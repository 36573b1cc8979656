"""The firmware's own jurisdiction lookup (keifw/geo.py), run on the host."""

from __future__ import annotations

import datetime as _dt
import math

from . import rules as _rules


def units(lat: float, lon: float) -> tuple[int, int]:
    """(x, y) in the boundaries' 1e-4 degree, as the firmware computes them
    from a fix (truncated towards zero; east of 170 E folded west)."""
    x = math.trunc(round(lon * 1e7) / 1000)
    y = math.trunc(round(lat * 1e7) / 1000)
    if x > 1700000:
        x -= 3600000
    return x, y


def geo():
    from ..dbccompiler import import_firmware_module

    return import_firmware_module("keifw.geo")


def region_at(lat: float, lon: float) -> str | None:
    g = geo()
    r = g.find(*units(lat, lon))
    return g.code(r).decode() if r >= 0 else None


def where(lat: float, lon: float, day: _dt.date | None = None):
    """(region code or None, the rule in force there on ``day`` or None)."""
    region = region_at(lat, lon)
    if region is None:
        return None, None
    return region, _rules.load().for_region(region, day)
