"""The jurisdiction boundaries a board holds: US states (and Japan) as
simplified polygons in the generated firmware module ``keifw/geo_us.py``.

Source: the Census Bureau's 2010 cartographic boundary file of the states at
1:20,000,000 (``gz_2010_us_040_00_20m``, public domain), as GeoJSON at
``$KEIDRIVE_US_STATES``. It is a valid coverage: neighbours share their
border vertex for vertex. The borders are cut into arcs where the set of
states on either side changes, each arc is simplified once
(Douglas-Peucker, in metres) and used by every state it bounds, so the
simplified states still meet without gaps or overlaps: a point on land is
in exactly one of them. Land borders (an arc with a state on both sides)
keep ``land_m``; coasts and the borders with Canada and Mexico (one state)
may move ``coast_m``, since nobody drives there. Islands under
``min_island_km2`` are left out.

Coordinates are whole 1e-4 degrees (11 m). Every edge is split so that it
spans less than 2**15 units (3.3 degrees) in longitude and latitude: the
firmware stores each arc as its first vertex and int16 steps, and its
crossing test multiplies two such spans (below 2**30, a small int on every
port). Each arc is stored once, shared or not: the crossing test counts
edges, so a region needs only the list of its arcs.

Japan is a polygon composed here (``JAPAN``): the sea around the
archipelago, passing between Japan's islands and the nearest land of Korea,
Russia and Taiwan, so it is exact for a car on land wherever it passes at
sea; the coordinates were read off public maps, not from boundary data.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KeidriveError

ENV = "KEIDRIVE_US_STATES"
UNIT = 1e-4  # degrees per stored unit (11 m)
MAX_SPAN = 32767  # units an edge may span in each axis (3.3 degrees)
EARTH_M = 6371008.8
M_PER_DEG = EARTH_M * math.pi / 180
# the firmware folds longitudes east of this onto the western side (Alaska's
# Aleutians cross the antimeridian); Japan lies west of it
WRAP_LON = 170.0

DEFAULT_LAND_M = 250.0
DEFAULT_COAST_INLAND_M = 1000.0
DEFAULT_COAST_M = 6000.0
DEFAULT_MIN_ISLAND_KM2 = 50.0

# FIPS state code -> USPS code (the census file names states by FIPS code)
USPS = {
    "01": "AL", "02": "AK", "04": "AZ", "05": "AR", "06": "CA", "08": "CO", "09": "CT", "10": "DE", "11": "DC",
    "12": "FL", "13": "GA", "15": "HI", "16": "ID", "17": "IL", "18": "IN", "19": "IA", "20": "KS", "21": "KY",
    "22": "LA", "23": "ME", "24": "MD", "25": "MA", "26": "MI", "27": "MN", "28": "MS", "29": "MO", "30": "MT",
    "31": "NE", "32": "NV", "33": "NH", "34": "NJ", "35": "NM", "36": "NY", "37": "NC", "38": "ND", "39": "OH",
    "40": "OK", "41": "OR", "42": "PA", "44": "RI", "45": "SC", "46": "SD", "47": "TN", "48": "TX", "49": "UT",
    "50": "VT", "51": "VA", "53": "WA", "54": "WV", "55": "WI", "56": "WY", "72": "PR",
}

# Japan: (longitude, latitude), counter-clockwise from south of Yonaguni. It
# passes west of Yonaguni and east of Taiwan (122.5 E), between Jeju and the
# Goto islands, through the Korea Strait between Tsushima and Busan, east of
# Ulleungdo, south of the Russian coast, through La Perouse Strait between
# Cape Soya and Cape Crillon, through the Nemuro Strait west of Kunashir and
# the Habomai islands (Russian-administered), then out into the Pacific
# around the Izu and Ogasawara islands and back round Okinawa.
JAPAN = (
    (123.5, 23.6), (131.5, 24.5), (143.0, 26.0), (147.0, 42.5), (146.0, 43.0), (145.9, 43.33),
    (145.45, 43.62), (145.45, 44.2), (145.0, 44.6), (142.0, 45.72), (140.6, 45.6), (139.0, 42.0),
    (132.5, 38.5), (130.5, 35.6), (129.55, 34.9), (129.1, 34.05), (128.9, 33.6), (128.0, 32.4),
    (127.0, 30.5), (122.5, 25.5), (122.5, 24.0),
)


@dataclass
class Boundaries:
    """The simplified regions, in whole units (1e-4 degree; x longitude, y
    latitude): each region's border is the list of arcs ``region_arcs[i]``
    names; together they close its rings (a region's inside is what an odd
    number of its edges surround, holes and islands included)."""

    codes: list[str]
    arcs: list[list[tuple[int, int]]]
    region_arcs: list[list[int]]
    figures: dict = field(default_factory=dict)

    def rings(self, region: int) -> list[list[tuple[int, int]]]:
        """The region's arcs chained into closed rings (first point not repeated)."""
        left = {arc: self.arcs[arc] for arc in self.region_arcs[region]}
        rings = []
        while left:
            _arc, points = left.popitem()
            ring = list(points)
            while ring[-1] != ring[0]:
                for other, pts in left.items():
                    if pts[0] == ring[-1]:
                        ring.extend(pts[1:])
                    elif pts[-1] == ring[-1]:
                        ring.extend(pts[-2::-1])
                    else:
                        continue
                    del left[other]
                    break
                else:
                    raise KeidriveError(f"region {self.codes[region]}: its arcs do not close")
            rings.append(ring[:-1])
        return rings

    def polygons(self):
        """Per region, a shapely geometry in degrees: the even-odd union of its rings."""
        import shapely

        out = []
        for region in range(len(self.codes)):
            geometry = None
            for ring in self.rings(region):
                polygon = shapely.Polygon([(x * UNIT, y * UNIT) for x, y in ring])
                geometry = polygon if geometry is None else geometry.symmetric_difference(polygon)
            out.append(geometry)
        return out


def source_path(path: str | os.PathLike | None = None) -> Path:
    """The census GeoJSON: ``path``, else ``$KEIDRIVE_US_STATES``."""
    text = path or os.environ.get(ENV)
    if not text:
        raise KeidriveError(f"no state boundaries: pass --source FILE.geojson or set {ENV} "
                            "(the Census Bureau's gz_2010_us_040_00_20m as GeoJSON)")
    result = Path(text)
    if not result.is_file():
        raise KeidriveError(f"{result}: no such file (the state boundaries)")
    return result


def _load(path: Path):
    """(codes, per region its rings as lists of (lon, lat) without the closing point)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        features = data["features"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise KeidriveError(f"{path}: not a GeoJSON feature collection ({error})") from None
    codes, regions = [], []
    for feature in features:
        code = USPS.get(str(feature.get("properties", {}).get("STATE")))
        geometry = feature.get("geometry") or {}
        if code is None or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            raise KeidriveError(f"{path}: a feature that is not a US state polygon ({feature.get('properties')})")
        polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
        rings = []
        for polygon in polygons:
            for ring in polygon:
                points = [(float(lon) - 360.0 if float(lon) > WRAP_LON else float(lon), float(lat)) for lon, lat in ring]
                if points[0] == points[-1]:
                    points.pop()
                rings.append(points)
        codes.append(code)
        regions.append(rings)
    order = sorted(range(len(codes)), key=codes.__getitem__)
    return [codes[i] for i in order], [regions[i] for i in order]


def _ring_area_km2(points) -> float:
    lat0 = sum(p[1] for p in points) / len(points)
    k = math.cos(math.radians(lat0))
    area = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        area += (x1 * k) * y2 - (x2 * k) * y1
    return abs(area) / 2 * (M_PER_DEG / 1000) ** 2


def _arcs(regions):
    """Cut every ring into arcs where its neighbour changes. Returns, per
    region, per ring, a list of (arc id, reversed); and the arcs, each
    (points, owners) with points in the arc's canonical direction."""
    owners: dict = {}
    for r, rings in enumerate(regions):
        for ring in rings:
            n = len(ring)
            for i in range(n):
                key = frozenset((ring[i], ring[(i + 1) % n]))
                owners.setdefault(key, set()).add(r)
    arc_ids: dict = {}
    arcs: list = []
    layout = []
    for rings in regions:
        ring_layout = []
        for ring in rings:
            n = len(ring)
            side = [frozenset(owners[frozenset((ring[i], ring[(i + 1) % n]))]) for i in range(n)]
            cuts = [i for i in range(n) if side[i] != side[i - 1]]
            pieces = []
            if not cuts:  # one neighbour (or none) all round: a closed arc, cut at its lowest point
                start = min(range(n), key=ring.__getitem__)
                points = ring[start:] + ring[:start] + [ring[start]]
                pieces.append((points, side[0]))
            else:
                for k, start in enumerate(cuts):
                    end = cuts[(k + 1) % len(cuts)]
                    idx = list(range(start, end + 1)) if end > start else list(range(start, n)) + list(range(end + 1))
                    pieces.append(([ring[i] for i in idx], side[start]))
            entries = []
            for points, who in pieces:
                forward, backward = tuple(points), tuple(reversed(points))
                key = min(forward, backward)
                if key not in arc_ids:
                    arc_ids[key] = len(arcs)
                    arcs.append((list(key), who))
                entries.append((arc_ids[key], key != forward))
            ring_layout.append(entries)
        layout.append(ring_layout)
    return layout, arcs


def _project(points):
    lat0 = sum(p[1] for p in points) / len(points)
    k = math.cos(math.radians(lat0)) * M_PER_DEG
    return [(lon * k, lat * M_PER_DEG) for lon, lat in points]


def _douglas_peucker(xy, left_m, right_m):
    """Indices of the points Douglas-Peucker keeps (the ends always): a point
    of the source may lie at most ``left_m`` left of the simplified line, at
    most ``right_m`` right of it."""
    keep = {0, len(xy) - 1}
    stack = [(0, len(xy) - 1)]
    while stack:
        a, b = stack.pop()
        if b <= a + 1:
            continue
        (ax, ay), (bx, by) = xy[a], xy[b]
        dx, dy = bx - ax, by - ay
        length = math.hypot(dx, dy)
        best, worst = 1.0, -1
        for i in range(a + 1, b):
            px, py = xy[i]
            if length:
                d = (dx * (py - ay) - dy * (px - ax)) / length  # > 0: left of a -> b
            else:
                d = math.hypot(px - ax, py - ay)
            over = d / left_m if d > 0 else -d / right_m
            if over > best:
                best, worst = over, i
        if worst >= 0:
            keep.add(worst)
            stack += [(a, worst), (worst, b)]
    return sorted(keep)


def _simplify(points, left_m, right_m):
    """The arc simplified (see _douglas_peucker); a closed arc keeps its two
    halves between its farthest-apart points."""
    xy = _project(points)
    if points[0] == points[-1]:
        far = max(range(len(xy)), key=lambda i: (xy[i][0] - xy[0][0]) ** 2 + (xy[i][1] - xy[0][1]) ** 2)
        first = _douglas_peucker(xy[:far + 1], left_m, right_m)
        second = _douglas_peucker(xy[far:], left_m, right_m)
        kept = first + [far + i for i in second[1:]]
        if len(kept) < 4:  # a triangle at least
            kept = sorted(set(kept) | {len(xy) // 3, 2 * len(xy) // 3})
    else:
        kept = _douglas_peucker(xy, left_m, right_m)
    return [points[i] for i in kept]


def _land_on_left(points, region_rings) -> bool:
    """Whether the region lies left of the arc (its first segment's middle, a step aside)."""
    (x1, y1), (x2, y2) = points[0], points[1]
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    step = 1e-5
    px, py = (x1 + x2) / 2 - (y2 - y1) / length * step, (y1 + y2) / 2 + (x2 - x1) / length * step
    inside = False
    for ring in region_rings:  # even-odd, as the firmware counts
        for (ax, ay), (bx, by) in zip(ring, ring[1:] + ring[:1]):
            if (ay > py) != (by > py) and px < ax + (py - ay) * (bx - ax) / (by - ay):
                inside = not inside
    return inside


def _quantize(points):
    """Whole units, repeated points dropped, edges split below MAX_SPAN."""
    out = []
    for lon, lat in points:
        p = (round(lon / UNIT), round(lat / UNIT))
        if not out:
            out.append(p)
            continue
        if p == out[-1]:
            continue
        (x0, y0), (x1, y1) = out[-1], p
        pieces = max(1, -(-max(abs(x1 - x0), abs(y1 - y0)) // MAX_SPAN))
        for k in range(1, pieces + 1):
            out.append((x0 + round((x1 - x0) * k / pieces), y0 + round((y1 - y0) * k / pieces)))
    return out


def _hausdorff_m(original, simplified) -> float:
    import shapely

    lat0 = sum(p[1] for p in original) / len(original)
    k = math.cos(math.radians(lat0)) * M_PER_DEG
    a = shapely.LineString([(x * k, y * M_PER_DEG) for x, y in original])
    b = shapely.LineString([(x * UNIT * k, y * UNIT * M_PER_DEG) for x, y in simplified])
    if len(original) < 2 or len(simplified) < 2:
        return 0.0
    return float(shapely.hausdorff_distance(a, b, densify=0.05))


def build(path: str | os.PathLike | None = None, *, land_m: float = DEFAULT_LAND_M,
          coast_inland_m: float = DEFAULT_COAST_INLAND_M, coast_m: float = DEFAULT_COAST_M,
          min_island_km2: float = DEFAULT_MIN_ISLAND_KM2, measure: bool = True) -> Boundaries:
    """Simplify the census file into the regions a board holds; with
    ``measure``, ``figures`` says how far the simplified borders moved."""
    try:
        import shapely  # noqa: F401  (the validity checks and measures below)
    except ImportError:
        raise KeidriveError("simplifying the boundaries needs shapely: pip install 'keidrive[geo]'") from None
    source = source_path(path)
    codes, regions = _load(source)
    # islands too small to matter (a closed ring with no neighbour): gone
    dropped = 0
    kept_regions = []
    for rings in regions:
        kept = [ring for ring in rings if _ring_area_km2(ring) >= min_island_km2]
        dropped += len(rings) - len(kept)
        kept_regions.append(kept)
    regions = kept_regions
    layout, arcs = _arcs(regions)
    # a coast may move out to sea by coast_m (leaving the source's coast on
    # its land side), but into the land by coast_inland_m only, so that a car
    # on a coastal road is still in its state
    tolerance = []
    for points, who in arcs:
        if len(who) > 1:
            tolerance.append((land_m, land_m))
        elif _land_on_left(points, regions[next(iter(who))]):
            tolerance.append((coast_m, coast_inland_m))
        else:
            tolerance.append((coast_inland_m, coast_m))
    # simplify; an arc that comes out crossing itself or another arc, or
    # bounding a region that overlaps another, again with its larger
    # tolerance halved
    for _attempt in range(12):
        simplified = [_quantize(_simplify(points, *t)) for (points, _who), t in zip(arcs, tolerance)]
        bad = _crossing_arcs(simplified) or _overlapping_arcs(layout, simplified)
        if not bad:
            break
        for arc in bad:
            left, right = tolerance[arc]
            tolerance[arc] = (left / 2, right) if left > right else (left, right / 2) if right > left else (
                left / 2, right / 2)
    else:
        raise KeidriveError("the simplified boundaries keep crossing; use smaller tolerances")
    region_arcs = [sorted({arc for ring in rings for arc, _rev in ring}) for rings in layout]
    japan = _quantize(list(JAPAN) + [JAPAN[0]])
    result = Boundaries(codes + ["JP"], simplified + [japan], region_arcs + [[len(simplified)]])
    if measure:
        land = [i for i, (_p, who) in enumerate(arcs) if len(who) > 1]
        coast = [i for i, (_p, who) in enumerate(arcs) if len(who) == 1]
        worst_land = max((_hausdorff_m(arcs[i][0], simplified[i]), i) for i in land)
        result.figures = {
            "source": str(source),
            "land_tolerance_m": land_m,
            "coast_inland_tolerance_m": coast_inland_m,
            "coast_tolerance_m": coast_m,
            "min_island_km2": min_island_km2,
            "islands_dropped": dropped,
            "border_error_m": round(worst_land[0], 1),
            "border_error_between": "-".join(sorted(codes[r] for r in arcs[worst_land[1]][1])),
            "coast_error_m": round(max(_hausdorff_m(arcs[i][0], simplified[i]) for i in coast), 1),
            "coast_inland_error_m": round(_inland_error_m(regions, result), 1),
            "arcs": len(result.arcs),
            "vertices": sum(len(a) for a in result.arcs),
        }
    return result


def _inland_error_m(regions, b: Boundaries) -> float:
    """How far inside its state a coast point of the source may lie outside the
    simplified state: the largest distance of such a point from it."""
    import shapely

    worst = 0.0
    for r, (rings, simple) in enumerate(zip(regions, b.polygons())):
        lat0 = sum(y for ring in rings for _x, y in ring) / sum(len(ring) for ring in rings)
        k = math.cos(math.radians(lat0))
        scaled = shapely.affinity.scale(simple, xfact=k, yfact=1.0, origin=(0, 0))
        for ring in rings:
            points = shapely.points([(x * k, y) for x, y in ring])
            outside = points[~shapely.contains(scaled, points)]
            if len(outside):
                worst = max(worst, float(shapely.distance(scaled.boundary, outside).max()) * M_PER_DEG)
    return worst


def _assemble(layout, simplified):
    out = []
    for rings in layout:
        region = []
        for ring in rings:
            points = []
            for arc, reverse in ring:
                piece = simplified[arc][::-1] if reverse else simplified[arc]
                points.extend(piece if not points else piece[1:])
            if len(points) > 1 and points[0] == points[-1]:
                points.pop()
            region.append(points)
        out.append(region)
    return out


def _crossing_arcs(simplified) -> list[int]:
    """Arcs that cross themselves, or touch another anywhere but at a shared end."""
    import shapely

    lines = [shapely.LineString(points) for points in simplified]
    tree = shapely.STRtree(lines)
    bad = set()
    for i, line in enumerate(lines):
        if not line.is_simple:
            bad.add(i)
        ends_i = {simplified[i][0], simplified[i][-1]}
        for j in tree.query(line, predicate="intersects"):
            if j <= i:
                continue
            common = shapely.intersection(line, lines[j])
            shared = ends_i & {simplified[j][0], simplified[j][-1]}
            points = shapely.get_coordinates(common)
            if common.geom_type not in ("Point", "MultiPoint") or any(tuple(p) not in shared for p in points):
                bad.update((i, j))
    return sorted(bad)


def _overlapping_arcs(layout, simplified) -> list[int]:
    """The arcs near where two simplified regions overlap (a coast pushed
    out to sea over another state's island)."""
    import shapely

    shapes = []
    for rings in _assemble(layout, simplified):
        geometry = None
        for ring in rings:
            polygon = shapely.Polygon(ring)
            geometry = polygon if geometry is None else geometry.symmetric_difference(polygon)
        shapes.append(geometry)
    tree = shapely.STRtree(shapes)
    lines = shapely.STRtree([shapely.LineString(points) for points in simplified])
    bad = set()
    for r, shape in enumerate(shapes):
        for other in tree.query(shape, predicate="intersects"):
            if other <= r:
                continue
            common = shape.intersection(shapes[other])
            if common.area > 0:
                bad.update(int(i) for i in lines.query(common.envelope.buffer(1)))
    return sorted(bad)


# ---------------------------------------------------------------------------
# the firmware module: keifw/geo_us.py
# ---------------------------------------------------------------------------
MODULE = "geo_us"
REGION_WORDS = 5  # first | count << 16 into ARC_IDS, then the bounding box xmin, ymin, xmax, ymax
ARC_WORDS = 6  # first step | steps << 16, x0, y0, ymin, ymax, xmax


def _bytes_literal(data: bytes, width: int = 96) -> str:
    """A bytes literal over several lines (implicit concatenation: one constant)."""
    pieces = [chr(c) if 32 <= c < 127 and c not in (34, 92) else f"\\x{c:02x}" for c in data]
    lines, line = [], ""
    for piece in pieces:
        if len(line) + len(piece) > width:
            lines.append(line)
            line = ""
        line += piece
    lines.append(line)
    return "(\n" + "\n".join(f'    b"{line}"' for line in lines) + "\n)"


def encode(b: Boundaries) -> dict[str, bytes]:
    """The tables the firmware reads (little-endian; see keifw/geo.py)."""
    import struct

    arcs = bytearray()
    steps = bytearray()
    n_steps = 0
    for points in b.arcs:
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        count = len(points) - 1
        if n_steps >= 1 << 16 or count >= 1 << 16:
            raise KeidriveError("too many boundary vertices for the firmware's 16-bit offsets")
        arcs += struct.pack("<6i", n_steps | count << 16, xs[0], ys[0], min(ys), max(ys), max(xs))
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            steps += struct.pack("<2h", x1 - x0, y1 - y0)
        n_steps += count
    regions = bytearray()
    ids = bytearray()
    for arc_list in b.region_arcs:
        xs = [x for a in arc_list for x, _y in b.arcs[a]]
        ys = [y for a in arc_list for _x, y in b.arcs[a]]
        regions += struct.pack("<5i", len(ids) // 2 | len(arc_list) << 16, min(xs), min(ys), max(xs), max(ys))
        ids += struct.pack(f"<{len(arc_list)}H", *arc_list)
    return {"CODES": "".join(b.codes).encode(), "REGIONS": bytes(regions), "ARC_IDS": bytes(ids),
            "ARCS": bytes(arcs), "STEPS": bytes(steps)}


def module_text(b: Boundaries, command: str) -> str:
    tables = encode(b)
    f = b.figures
    head = (
        f"# Generated by `{command}` - do not edit; regenerate with that command.\n"
        "# From the US Census Bureau's 2010 cartographic boundaries of the states at 1:20,000,000\n"
        "# (gz_2010_us_040_00_20m, public domain) and the polygon of Japan composed in\n"
        "# keidrive/gps/boundaries.py (JAPAN). Land borders simplified to "
        f"{f['land_tolerance_m']:g} m; coasts and international\n"
        f"# borders may move {f['coast_tolerance_m']:g} m out and {f['coast_inland_tolerance_m']:g} m in; "
        f"islands under {f['min_island_km2']:g} km2 left out ({f['islands_dropped']}).\n"
        f"# Measured against the source: worst land border error {f['border_error_m']} m "
        f"({f['border_error_between']}); coasts {f['coast_error_m']} m\n"
        f"# out to sea, {f['coast_inland_error_m']} m inland. {f['arcs']} arcs, {f['vertices']} vertices.\n"
        '"""Jurisdiction boundaries: arcs of int16 steps in 1e-4 degrees (layout in keifw/geo.py)."""\n\n'
        "from micropython import const\n\n"
        f"N_REGIONS = const({len(b.codes)})\n"
    )
    body = "".join(f"{name} = {_bytes_literal(data)}\n" for name, data in tables.items())
    return head + body


def decode(module) -> Boundaries:
    """The boundaries a generated module holds (the host's maps and tests read these)."""
    import struct

    codes = module.CODES.decode()
    names = [codes[i:i + 2] for i in range(0, len(codes), 2)]
    arcs = []
    for k in range(len(module.ARCS) // (4 * ARC_WORDS)):
        head, x, y, _ymin, _ymax, _xmax = struct.unpack_from("<6i", module.ARCS, k * 4 * ARC_WORDS)
        first, count = head & 0xFFFF, head >> 16
        points = [(x, y)]
        for dx, dy in struct.iter_unpack("<2h", module.STEPS[first * 4:(first + count) * 4]):
            x, y = x + dx, y + dy
            points.append((x, y))
        arcs.append(points)
    region_arcs = []
    for r in range(len(names)):
        head = struct.unpack_from("<i", module.REGIONS, r * 4 * REGION_WORDS)[0]
        first, count = head & 0xFFFF, head >> 16
        region_arcs.append(list(struct.unpack_from(f"<{count}H", module.ARC_IDS, first * 2)))
    return Boundaries(names, arcs, region_arcs)


def bundled() -> Boundaries:
    """The boundaries in the bundled firmware's generated module."""
    from ..dbccompiler import import_firmware_module

    return decode(import_firmware_module("keifw." + MODULE))
