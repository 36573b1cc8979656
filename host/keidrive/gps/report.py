"""What a drive along a route shows: the jurisdiction changes the firmware
reported (its ``jurisdiction`` lines), the GPS reader's counts (its ``gps``
line), and a plot: the speed with the limit in force as a line, and a map of
the route over the state outlines of the same boundary data the firmware
carries (keifw/geo_us.py)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

ROUTE_COLOURS = ("#2d6cdf", "#27ae60", "#9b51e0", "#e67e22", "#16a085", "#c0392b", "#7f8c8d")


def jurisdictions(firmware) -> list[dict]:
    return firmware.of_type("jurisdiction")


def json_figures(firmware) -> dict:
    """``--json`` keys of a route drive: ``jurisdictions`` (the lines as the
    firmware wrote them) and ``gps`` (its reader's summary, or null)."""
    gps = firmware.of_type("gps")
    return {"jurisdictions": jurisdictions(firmware), "gps": gps[-1] if gps else None}


def print_jurisdictions(firmware, route, console) -> None:
    """The jurisdiction changes and the reader's counts (``route``: the
    simulated drive's, or None for a replay)."""
    changes = jurisdictions(firmware)
    if route is not None:
        console.print(f"route {route.name}: {route.length_km:.1f} km from {route.start:%Y-%m-%d %H:%M} UTC")
    if not changes:
        console.print("jurisdiction: none found (no fix, or outside every region): the profile's rules throughout")
    else:
        table = Table(title="jurisdiction changes", title_justify="left")
        for column in ("t s", "region", "rule", "limit", "minimum", "why"):
            table.add_column(column, justify="right" if column in ("t s", "limit", "minimum") else "left")
        for c in changes:
            table.add_row(f"{c['t_s']:.1f}", c["region"] or "-", c["rule"],
                          f"{c['limit_kmh']:.1f} km/h ({c['limit_kmh'] / 1.609344:.0f} mph)",
                          f"{c['minimum_kmh']:.1f} km/h" if c.get("minimum_kmh") else "-", c["reason"])
        console.print(table)
    gps = firmware.of_type("gps")
    if gps:
        g = gps[-1]
        console.print(f"gps: {g['sentences']} sentences read, {g['positions']} positions, {g['no_fix']} without a "
                      f"fix; refused: {g['bad_checksum']} bad checksum, {g['garbled']} garbled, {g['stale']} stale")


def profile_limit_kmh(config: dict) -> float:
    """The limit of the config's profile, as the firmware's warnings set it up."""
    from ..fwconfig import firmware_module, schema_module

    cfg = {**schema_module().DEFAULTS, **config}
    return firmware_module("alerts").Alerts(cfg, False, False).limit / 100


def limit_steps(firmware, end_s: float, profile_kmh: float | None = None):
    """(times, limits km/h) of the limit in force, as a step line from 0 to
    end_s (the profile's before the first jurisdiction)."""
    times, limits = [0.0], [profile_kmh]
    for c in jurisdictions(firmware):
        times.append(c["t_s"])
        limits.append(c["limit_kmh"])
    times.append(end_s)
    limits.append(limits[-1])
    return times, limits


def plot(path, firmware, trace, route, config: dict, title: str = "") -> Path:
    """Speed (truth and firmware), the limit in force and the warnings; and
    the map: state outlines, the route coloured by the region the firmware
    put the car in, each change marked."""
    import numpy as np

    from ..plot import LEVEL_COLOURS, check_plot_path, pyplot, save
    from .boundaries import UNIT, bundled

    plt = pyplot()
    path = check_plot_path(path)
    trip = firmware.trip or {}
    figure = plt.figure(figsize=(13, 8))
    grid = figure.add_gridspec(2, 2, width_ratios=(3, 2))
    speed_ax = figure.add_subplot(grid[0, 0])
    map_ax = figure.add_subplot(grid[:, 1])
    dist_ax = figure.add_subplot(grid[1, 0], sharex=speed_ax)

    t = np.asarray(trace["time_s"])
    speed_ax.plot(t, trace["speed_kmh"], color="#2d6cdf", lw=1, label="vehicle")
    times, limits = limit_steps(firmware, float(t[-1]), profile_limit_kmh(config))
    speed_ax.step(times, limits, where="post", color="#c0392b", lw=1.5, label="limit in force")
    for w in trip.get("warnings", []):
        end = w["end_s"] if w.get("end_s") is not None else float(t[-1])
        speed_ax.axvspan(w["start_s"], end, color=LEVEL_COLOURS.get(w["level"], "#cccccc"), alpha=0.3, lw=0)
    for c in jurisdictions(firmware):
        speed_ax.axvline(c["t_s"], color="#555555", lw=0.6, ls=":")
        speed_ax.text(c["t_s"], speed_ax.get_ylim()[1] * 0.97, c["region"] or "none", fontsize=7, va="top")
    speed_ax.set_ylabel("speed km/h")
    speed_ax.legend(loc="lower right", fontsize=8)

    distance = np.concatenate(([0.0], np.cumsum(np.diff(t) * (np.asarray(trace["speed_kmh"])[1:]
                                                              + np.asarray(trace["speed_kmh"])[:-1]) / 7.2 / 1000)))
    dist_ax.plot(t, distance, color="#7f8c8d", lw=1)
    dist_ax.set_ylabel("distance km")
    dist_ax.set_xlabel("time s")

    b = bundled()
    lat, lon, _ = route.at(distance * 1000)
    pad = max(0.25, 0.2 * max(lon.max() - lon.min(), lat.max() - lat.min()))
    box = (lon.min() - pad, lon.max() + pad, lat.min() - pad, lat.max() + pad)
    for code, rings in zip(b.codes, (b.rings(r) for r in range(len(b.codes)))):
        for ring in rings:
            xs = [x * UNIT for x, _ in ring] + [ring[0][0] * UNIT]
            ys = [y * UNIT for _, y in ring] + [ring[0][1] * UNIT]
            if max(xs) < box[0] or min(xs) > box[1] or max(ys) < box[2] or min(ys) > box[3]:
                continue
            map_ax.plot(xs, ys, color="#999999", lw=0.6)
            if len(ring) > 20:
                map_ax.text(float(np.mean(xs)), float(np.mean(ys)), code, fontsize=8, color="#777777",
                            ha="center", clip_on=True)
    # the route, coloured by the region the firmware had the car in
    changes = jurisdictions(firmware)
    cuts = [0.0] + [c["t_s"] for c in changes] + [float(t[-1]) + 1]
    names = ["(before a fix)"] + [c["region"] or "none" for c in changes]
    for k in range(len(cuts) - 1):
        sel = (t >= cuts[k]) & (t <= cuts[k + 1])
        if sel.any():
            map_ax.plot(lon[sel], lat[sel], color=ROUTE_COLOURS[k % len(ROUTE_COLOURS)], lw=2.5, label=names[k])
    for c in changes:
        i = min(int(np.searchsorted(t, c["t_s"])), len(t) - 1)
        map_ax.plot(lon[i], lat[i], "o", color="#c0392b", ms=5)
    map_ax.set_xlim(box[0], box[1])
    map_ax.set_ylim(box[2], box[3])
    map_ax.set_aspect(1 / np.cos(np.radians(float(lat.mean()))))
    map_ax.set_xlabel("longitude")
    map_ax.set_ylabel("latitude")
    map_ax.legend(loc="lower left", fontsize=7, title="jurisdiction", title_fontsize=7)
    map_ax.set_title("route and the state lines the firmware carries", fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    save(figure, path, plt)
    return path
