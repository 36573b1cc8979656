"""Which jurisdiction a position is in: point in polygon on the generated
boundaries (keifw/geo_us.py, ``keidrive geo compile``), in viper.

Units are whole 1e-4 degree (x longitude, y latitude; longitudes east of
170 E folded onto the west, as Alaska's are). The tables, little-endian:

- REGIONS: per region 5 int32: first entry of its arcs in ARC_IDS | their
  count << 16, then its bounding box xmin, ymin, xmax, ymax;
- ARC_IDS: uint16 arc numbers;
- ARCS: per arc 6 int32: first step | steps << 16, the first vertex x0, y0,
  then ymin, ymax, xmax of the arc;
- STEPS: int16 (dx, dy) from one vertex to the next, each under 2**15.

They are read a byte at a time: a frozen bytes object in a board's flash
has no alignment guarantee, and the RP2040's Cortex-M0+ faults on an
unaligned word load. A region is what an odd number of its edges surround
(a ray to +x): holes and islands need no flag, and an arc shared by two
states is stored once. The crossing test multiplies two spans of one edge
(each under 2**15), so every product stays below 2**30.
"""

import micropython

from . import geo_us as _g

N_REGIONS = _g.N_REGIONS
# the margin a position must be inside a new region by before it counts
# (a GPS jitter across a border moves the rules nothing): 5 units of
# latitude, 55 m; in longitude the same metres, as units at the latitude
MARGIN_Y = 5


@micropython.viper
def _inside(regs: ptr8, ids: ptr8, arcs: ptr8, steps: ptr8, r: int, px: int, py: int) -> int:
    o = r * 20
    v = regs[o + 4] | (regs[o + 5] << 8) | (regs[o + 6] << 16) | (regs[o + 7] << 24)
    if (v >> 31) == 1:  # a negative word assembled on a 64-bit port
        v -= (v >> 31) << 16 << 16
    if px < v:
        return 0
    v = regs[o + 12] | (regs[o + 13] << 8) | (regs[o + 14] << 16) | (regs[o + 15] << 24)
    if (v >> 31) == 1:
        v -= (v >> 31) << 16 << 16
    if px > v:
        return 0
    v = regs[o + 8] | (regs[o + 9] << 8) | (regs[o + 10] << 16) | (regs[o + 11] << 24)
    if (v >> 31) == 1:
        v -= (v >> 31) << 16 << 16
    if py < v:
        return 0
    v = regs[o + 16] | (regs[o + 17] << 8) | (regs[o + 18] << 16) | (regs[o + 19] << 24)
    if (v >> 31) == 1:
        v -= (v >> 31) << 16 << 16
    if py > v:
        return 0
    first = regs[o] | (regs[o + 1] << 8)
    count = regs[o + 2] | (regs[o + 3] << 8)
    c = 0
    k = 0
    while k < count:
        ia = (first + k) * 2
        ao = (ids[ia] | (ids[ia + 1] << 8)) * 24
        k += 1
        v = arcs[ao + 12] | (arcs[ao + 13] << 8) | (arcs[ao + 14] << 16) | (arcs[ao + 15] << 24)
        if (v >> 31) == 1:
            v -= (v >> 31) << 16 << 16
        if py < v:  # every vertex above the ray: no crossing
            continue
        v = arcs[ao + 16] | (arcs[ao + 17] << 8) | (arcs[ao + 18] << 16) | (arcs[ao + 19] << 24)
        if (v >> 31) == 1:
            v -= (v >> 31) << 16 << 16
        if py >= v:  # every vertex at or below it
            continue
        v = arcs[ao + 20] | (arcs[ao + 21] << 8) | (arcs[ao + 22] << 16) | (arcs[ao + 23] << 24)
        if (v >> 31) == 1:
            v -= (v >> 31) << 16 << 16
        if px >= v:  # the arc lies left of the point: the ray to +x misses it
            continue
        x1 = arcs[ao + 4] | (arcs[ao + 5] << 8) | (arcs[ao + 6] << 16) | (arcs[ao + 7] << 24)
        if (x1 >> 31) == 1:
            x1 -= (x1 >> 31) << 16 << 16
        y1 = arcs[ao + 8] | (arcs[ao + 9] << 8) | (arcs[ao + 10] << 16) | (arcs[ao + 11] << 24)
        if (y1 >> 31) == 1:
            y1 -= (y1 >> 31) << 16 << 16
        so = (arcs[ao] | (arcs[ao + 1] << 8)) * 4
        se = so + (arcs[ao + 2] | (arcs[ao + 3] << 8)) * 4
        while so < se:
            dx = steps[so] | (steps[so + 1] << 8)
            dy = steps[so + 2] | (steps[so + 3] << 8)
            so += 4
            x2 = x1 + dx - ((dx & 0x8000) << 1)
            y2 = y1 + dy - ((dy & 0x8000) << 1)
            cross = 0
            if y1 > py:
                if y2 <= py:
                    cross = 1
            elif y2 > py:
                cross = 1
            if cross:
                if px < x1 and px < x2:
                    c ^= 1
                elif px < x1 or px < x2:
                    # where the edge meets the ray, against px: both sides
                    # times (y2 - y1), its sign flipping the comparison
                    a = (x2 - x1) * (py - y1)
                    b = (px - x1) * (y2 - y1)
                    if y2 > y1:
                        if a > b:
                            c ^= 1
                    elif a < b:
                        c ^= 1
            x1 = x2
            y1 = y2
    return c


def inside(r, x, y):
    """1 if the point (1e-4 degree) is in region r, else 0."""
    return _inside(_g.REGIONS, _g.ARC_IDS, _g.ARCS, _g.STEPS, r, x, y)  # pyright: ignore[reportArgumentType]


def find(x, y, skip=-1):
    """The region the point is in (not ``skip``), -1 if none."""
    for r in range(N_REGIONS):
        if r != skip and _inside(_g.REGIONS, _g.ARC_IDS, _g.ARCS, _g.STEPS, r, x, y):  # pyright: ignore[reportArgumentType]
            return r
    return -1


def margin_x(y):
    """MARGIN_Y's metres in longitude units at latitude y (1 / cos, in steps)."""
    lat = y if y >= 0 else -y
    if lat < 300000:
        return 6
    if lat < 450000:
        return 7
    if lat < 550000:
        return 9
    if lat < 620000:
        return 11
    return 16


def deep(r, x, y):
    """The point and four others a margin away (55 m north, south, east,
    west) all in region r: a position clearly past a border."""
    dx = margin_x(y)
    return (inside(r, x, y) and inside(r, x - dx, y) and inside(r, x + dx, y)
            and inside(r, x, y - MARGIN_Y) and inside(r, x, y + MARGIN_Y))


def code(r):
    """The region's two-letter code (bytes), b"" for none."""
    return _g.CODES[2 * r:2 * r + 2] if r >= 0 else b""
