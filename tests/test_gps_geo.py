"""The firmware's jurisdiction lookup (keifw/geo.py, viper, in the MicroPython
unix port) against shapely on the same simplified boundaries, at random
points near every border; the generated module against its source."""

import os
import random
import subprocess
import sys

import pytest
from conftest import micropython_or_skip, run_micropython
from keidrive.gps import boundaries
from keidrive.paths import firmware_dir

shapely = pytest.importorskip("shapely")
micropython_or_skip()

FIND_SCRIPT = r'''
import sys
sys.path.insert(0, sys.argv[1])
from keifw import geo
for line in open(sys.argv[2]):
    x, y = line.split()
    print(geo.find(int(x), int(y)))
'''


@pytest.fixture(scope="module")
def bundled():
    b = boundaries.bundled()
    return b, b.polygons()


def _firmware_find(points, tmp_path):
    path = tmp_path / "points.txt"
    path.write_text("".join(f"{x} {y}\n" for x, y in points))
    return [int(r) for r in run_micropython(FIND_SCRIPT, str(firmware_dir()), str(path), timeout=600).split()]


def test_the_simplified_states_neither_overlap_nor_cross(bundled):
    b, polygons = bundled
    assert all(p.is_valid for p in polygons)
    tree = shapely.STRtree(polygons)
    for r, p in enumerate(polygons):
        for other in tree.query(p, predicate="intersects"):
            if other != r:
                assert p.intersection(polygons[other]).area < 1e-9, (b.codes[r], b.codes[other])


def test_point_in_polygon_equals_shapely_near_every_border(bundled, tmp_path):
    """Around 20 random points within ~5 km of every arc, and 1,500 anywhere
    in the regions' extent; points within a metre of an edge are left out
    (which side holds an edge is a convention)."""
    b, polygons = bundled
    rng = random.Random(11)
    points = []
    for arc in b.arcs:
        for _ in range(20):
            i = rng.randrange(len(arc) - 1)
            (x1, y1), (x2, y2) = arc[i], arc[i + 1]
            f = rng.random()
            points.append((round(x1 + f * (x2 - x1)) + rng.randint(-500, 500),
                           round(y1 + f * (y2 - y1)) + rng.randint(-500, 500)))
    for _ in range(1500):
        points.append((rng.randint(-1800000, 1500000), rng.randint(180000, 720000)))
    edges = shapely.union_all([p.boundary for p in polygons])
    tree = shapely.STRtree(polygons)
    expected, kept = [], []
    for x, y in points:
        point = shapely.Point(x * boundaries.UNIT, y * boundaries.UNIT)
        if edges.distance(point) < 1e-5:
            continue
        hits = [int(r) for r in tree.query(point, predicate="within")]
        assert len(hits) <= 1, (x, y, [b.codes[r] for r in hits])
        expected.append(hits[0] if hits else -1)
        kept.append((x, y))
    got = _firmware_find(kept, tmp_path)
    wrong = [(p, b.codes[e] if e >= 0 else None, b.codes[g] if g >= 0 else None)
             for p, e, g in zip(kept, expected, got) if e != g]
    assert not wrong, wrong[:10]
    assert len(kept) > 6000 and sum(e >= 0 for e in expected) > 3000


@pytest.mark.parametrize("place, lat, lon, region", [
    ("Tokyo", 35.6895, 139.6917, "JP"), ("Sapporo", 43.0618, 141.3545, "JP"), ("Naha", 26.2124, 127.6809, "JP"),
    ("Izuhara, Tsushima", 34.2030, 129.2880, "JP"), ("Fukue, Goto", 32.6960, 128.8410, "JP"),
    ("Wakkanai", 45.4156, 141.6731, "JP"), ("Nemuro", 43.3300, 145.5830, "JP"), ("Ishigaki", 24.3448, 124.1572, "JP"),
    ("Chichijima", 27.0940, 142.1910, "JP"),
    ("Busan", 35.1796, 129.0756, None), ("Jeju", 33.4996, 126.5312, None), ("Taipei", 25.0330, 121.5654, None),
    ("Vladivostok", 43.1155, 131.8855, None), ("Yuzhno-Sakhalinsk", 46.9590, 142.7380, None),
    ("Denver", 39.7392, -104.9903, "CO"), ("Anchorage", 61.2181, -149.9003, "AK"), ("Honolulu", 21.3069, -157.8583, "HI"),
    ("Key Largo", 25.0865, -80.4473, "FL"), ("Miami Beach", 25.7907, -80.1300, "FL"), ("Seattle", 47.6062, -122.3321, "WA"),
    ("Toronto", 43.6532, -79.3832, None), ("Tijuana", 32.5149, -117.0382, None),
])
def test_places(place, lat, lon, region):
    """The firmware's lookup (run on the host: CPython) at well-known places,
    the Japan polygon's neighbours among them."""
    from keidrive.gps.locate import region_at

    assert region_at(lat, lon) == region, place


def test_the_generated_modules_are_what_the_source_compiles_to(tmp_path):
    """keidrive geo compile on the census file gives the committed modules
    byte for byte (their headers state the measured border errors)."""
    if not os.environ.get(boundaries.ENV):
        message = f"{boundaries.ENV} is not set (the census state boundaries GeoJSON)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    tree = tmp_path / "tree"
    for part in ("pyproject.toml",):
        (tree / part).parent.mkdir(parents=True, exist_ok=True)
        (tree / part).write_text("")
    (tree / "dbc").mkdir()
    (tree / "firmware" / "keifw" / "vehicles").mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "keidrive", "geo", "compile", "--tree", str(tree)],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    for name in ("geo_us.py", "kei_rules.py"):
        assert (tree / "firmware" / "keifw" / name).read_text() == (firmware_dir() / "keifw" / name).read_text(), name
    assert "worst land border error" in done.stdout
