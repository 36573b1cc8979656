"""Routes: where a drive goes. A GPX file (tracks, routes or waypoints, read
with gpxpy) or a CSV (``lat,lon`` columns), and a drive's speed trace laid
along it: the position at each moment is the point the distance driven so
far reaches on the route.

The bundled routes (``routes/*.gpx``, ``bundled_routes()``) were composed for
keidrive: waypoints at towns and crossings along real highways, their
coordinates read off public maps, joined by straight lines. Each file's
description says where it goes and which state lines it crosses.
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import KeidriveError

EARTH_M = 6371008.8
#: when a route names no start time: the day the rules table was checked (17:00 UTC, midday in the US)
DEFAULT_START = _dt.datetime(2026, 12, 7, 17, 0, tzinfo=_dt.UTC)


@dataclass
class Route:
    name: str
    lat: np.ndarray  # degrees
    lon: np.ndarray
    start: _dt.datetime  # UTC, when the drive begins
    description: str = ""

    @property
    def distance_m(self) -> np.ndarray:
        """Cumulative distance along the route at each point (haversine)."""
        lat1, lat2 = np.radians(self.lat[:-1]), np.radians(self.lat[1:])
        dlat = lat2 - lat1
        dlon = np.radians(self.lon[1:] - self.lon[:-1])
        h = np.sin(dlat / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlon / 2) ** 2
        return np.concatenate(([0.0], np.cumsum(2 * EARTH_M * np.arcsin(np.sqrt(h)))))

    @property
    def length_km(self) -> float:
        return float(self.distance_m[-1] / 1000)

    def at(self, distance_m: np.ndarray):
        """(lat, lon, course in degrees) at each distance along the route;
        past its end, its last point (the car drives on where the route
        stops: the drive is longer than the route)."""
        s = self.distance_m
        d = np.clip(distance_m, 0, s[-1])
        i = np.clip(np.searchsorted(s, d, side="right") - 1, 0, len(s) - 2)
        span = s[i + 1] - s[i]
        f = np.where(span > 0, (d - s[i]) / np.where(span > 0, span, 1), 0)
        lat = self.lat[i] + f * (self.lat[i + 1] - self.lat[i])
        lon = self.lon[i] + f * (self.lon[i + 1] - self.lon[i])
        lat1, lat2 = np.radians(self.lat[i]), np.radians(self.lat[i + 1])
        dlon = np.radians(self.lon[i + 1] - self.lon[i])
        course = np.degrees(np.arctan2(np.sin(dlon) * np.cos(lat2),
                                       np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(dlon)))
        return lat, lon, course % 360


def bundled_routes() -> list[str]:
    folder = resources.files(__package__).joinpath("routes")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".gpx"))


def load_route(name_or_path) -> Route:
    """A bundled route by name, or a .gpx / .csv file; one clear error for a bad one."""
    path = Path(name_or_path)
    if not path.exists() and path.suffix == "" and str(name_or_path) in bundled_routes():
        path = Path(str(resources.files(__package__).joinpath("routes", f"{name_or_path}.gpx")))
    if not path.is_file():
        raise KeidriveError(f"route {name_or_path}: no such file or bundled route "
                            f"(bundled: {', '.join(bundled_routes())})")
    if path.suffix.lower() == ".gpx":
        route = _load_gpx(path)
    elif path.suffix.lower() == ".csv":
        route = _load_csv(path)
    else:
        raise KeidriveError(f"route {path}: a .gpx or .csv file (lat,lon columns)")
    if len(route.lat) < 2 or route.length_km <= 0:
        raise KeidriveError(f"route {path}: needs at least two distinct points")
    bad = (np.abs(route.lat) > 90) | (np.abs(route.lon) > 180)
    if bad.any():
        raise KeidriveError(f"route {path}: point {int(np.flatnonzero(bad)[0]) + 1} is not a latitude and longitude")
    return route


def _load_gpx(path: Path) -> Route:
    import gpxpy
    import gpxpy.gpx

    try:
        gpx = gpxpy.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, gpxpy.gpx.GPXException, ValueError) as error:
        raise KeidriveError(f"route {path}: not a GPX file ({error})") from None
    points = [p for track in gpx.tracks for segment in track.segments for p in segment.points]
    points = points or [p for route in gpx.routes for p in route.points] or list(gpx.waypoints)
    if not points:
        raise KeidriveError(f"route {path}: no track, route or waypoints")
    start = gpx.time or points[0].time or DEFAULT_START
    if start.tzinfo is None:
        start = start.replace(tzinfo=_dt.UTC)
    return Route(gpx.name or path.stem, np.array([p.latitude for p in points], float),
                 np.array([p.longitude for p in points], float), start.astimezone(_dt.UTC),
                 gpx.description or "")


def _load_csv(path: Path) -> Route:
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            rows = list(csv.reader(line for line in stream if line.strip() and not line.startswith("#")))
    except (OSError, UnicodeError) as error:
        raise KeidriveError(f"route {path}: cannot read it ({error})") from None
    if not rows:
        raise KeidriveError(f"route {path}: empty")
    header = [h.strip().lower() for h in rows[0]]
    names = {"lat": ("lat", "latitude"), "lon": ("lon", "lng", "longitude")}
    try:
        ilat = next(header.index(n) for n in names["lat"] if n in header)
        ilon = next(header.index(n) for n in names["lon"] if n in header)
    except StopIteration:
        raise KeidriveError(f"route {path}: the header needs lat and lon columns") from None
    lat, lon = [], []
    for number, row in enumerate(rows[1:], 2):
        try:
            lat.append(float(row[ilat]))
            lon.append(float(row[ilon]))
        except (ValueError, IndexError):
            raise KeidriveError(f"route {path}: line {number}: not a latitude and longitude") from None
        if not (math.isfinite(lat[-1]) and math.isfinite(lon[-1])):
            raise KeidriveError(f"route {path}: line {number}: not a latitude and longitude")
    return Route(path.stem, np.array(lat), np.array(lon), DEFAULT_START)


def repeat_cycle(cycle, route: Route):
    """The cycle driven again and again until its distance covers the route
    (its target trace; the car stops with the last repetition)."""
    from ..sim.cycles import Cycle

    each = cycle.distance_km
    if each <= 0:
        raise KeidriveError(f"cycle {cycle.name} covers no distance: it cannot drive a route")
    n = max(1, math.ceil(route.length_km / each))
    period = cycle.time_s[-1] - cycle.time_s[0] + 1.0  # a second at standstill between repetitions
    time = np.concatenate([cycle.time_s - cycle.time_s[0] + k * period for k in range(n)])
    return Cycle(f"{cycle.name}x{n}" if n > 1 else cycle.name, time, np.tile(cycle.speed_mps, n),
                 np.tile(cycle.grade, n), [], cycle.description, cycle.source)
