"""The plots a person reads a drive by: the firmware's view of a trip
(speed against the limits in force, the warnings by kind and level, economy,
engine speed) and a simulation's traces. In mph and mpg on a US profile."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import KeidriveError

PLOT_SUFFIXES = (".png", ".pdf", ".svg")
LEVEL_COLOURS = {"advisory": "#f2c94c", "caution": "#f2994a", "critical": "#eb5757"}
KMH_PER_MPH = 1.609344
MPG_PER_KMPL = 2.352145  # US gallons
VEHICLE_COLOUR = "#2d6cdf"
CYCLE_COLOUR = "#9a9a9a"
LIMIT_COLOUR = "#c0392b"
MINIMUM_COLOUR = "#8e44ad"
ADVISORY_COLOUR = "#e67e22"


def check_plot_path(path: str | Path) -> Path:
    """The plot path, or one clear error before any work is done: a format
    matplotlib writes here, an existing, writable folder."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise KeidriveError(f"wants a {', '.join(PLOT_SUFFIXES)} file, got {str(path)!r}", option="plot")
    parent = path.parent
    if not parent.is_dir():
        raise KeidriveError(f"cannot write plot {path}: directory {parent} does not exist")
    if path.is_dir():
        raise KeidriveError(f"cannot write plot {path}: is a directory")
    if not os.access(path if path.exists() else parent, os.W_OK):
        raise KeidriveError(f"cannot write plot {path}: permission denied")
    return path


class Units:
    """Speed and economy as a profile's drivers read them."""

    def __init__(self, profile: str):
        self.us = profile.startswith("us-")
        self.speed = "mph" if self.us else "km/h"
        self.economy = "mpg" if self.us else "km/L"

    def speed_of(self, kmh):
        if kmh is None:
            return None
        return kmh / KMH_PER_MPH if self.us else kmh

    def economy_of(self, km_per_l):
        if km_per_l is None:
            return None
        return km_per_l * MPG_PER_KMPL if self.us else km_per_l


def plot_drive(path: str | Path, trip) -> Path:
    """A ``Trip`` on one time axis: speed (the vehicle, the cycle it
    followed, the limit and minimum in force), the warnings (one lane per
    kind, coloured by level), economy and, for a simulated drive, engine or
    motor speed."""
    from .fwconfig import speed_limits

    if trip.route is not None:  # the limit in force changes along the way: beside a map of the route
        from .gps.report import plot

        return plot(path, trip.report, trip.trace, trip.route, trip.config, f"{trip.title} ({trip.profile} elsewhere)")
    plt = pyplot()
    path = check_plot_path(path)
    units = Units(trip.profile)
    statuses = trip.report.statuses
    times = [s["t_s"] for s in statuses]
    end = times[-1] if times else trip.summary.get("duration_s", 0.0)
    warnings = trip.summary.get("warnings", [])
    kinds = sorted({w["kind"] for w in warnings})
    rows = [("speed", 3.0), ("warnings", 0.35 + 0.3 * max(len(kinds), 1)), ("economy", 2.0)]
    if trip.trace is not None:
        rows.append(("engine", 1.6))
    figure, axes = plt.subplots(len(rows), 1, figsize=(13, 1.2 + sum(h for _, h in rows)), sharex=True,
                                gridspec_kw={"height_ratios": [h for _, h in rows]}, layout="constrained")
    ax = dict(zip((name for name, _ in rows), axes))

    _speed(ax["speed"], trip, units, times, speed_limits(trip.config or {"profile": trip.profile}))
    _warnings(ax["warnings"], warnings, kinds, end)
    _economy(ax["economy"], trip, units, times)
    if "engine" in ax:
        rpm = trip.trace.get("engine_rpm", trip.trace.get("motor_rpm"))
        ax["engine"].plot(trip.trace["time_s"], rpm, color="#e67e22", lw=0.8)
        ax["engine"].set_ylabel("engine rpm" if "engine_rpm" in trip.trace else "motor rpm")
    axes[-1].set_xlabel("time s")
    axes[-1].set_xlim(0, end)
    figure.suptitle(f"{trip.title}, {trip.profile}")
    save(figure, path, plt)
    return path


def _speed(axis, trip, units, times, limits) -> None:
    if trip.trace is not None:
        trace = trip.trace
        # the cycle as a wide pale band under the vehicle: seen around it where the car keeps to it, apart
        # from it where the car cannot
        axis.plot(trace["time_s"], [units.speed_of(v) for v in trace["target_kmh"]], color=CYCLE_COLOUR, lw=4.5,
                  alpha=0.45, solid_capstyle="butt", label="cycle")
        axis.plot(trace["time_s"], [units.speed_of(v) for v in trace["speed_kmh"]], color=VEHICLE_COLOUR, lw=1.1,
                  label="vehicle")
    else:
        speeds = [units.speed_of(s.get("speed_kmh")) for s in trip.report.statuses]
        axis.plot(times, speeds, color=VEHICLE_COLOUR, lw=1.2, label="vehicle (firmware)")
    for key, label, colour, style in (("limit_kmh", "limit", LIMIT_COLOUR, "--"),
                                      ("advisory_kmh", "kei advisory", ADVISORY_COLOUR, "-."),
                                      ("minimum_kmh", "minimum", MINIMUM_COLOUR, ":")):
        if limits[key] is not None:
            value = units.speed_of(limits[key])
            axis.axhline(value, color=colour, lw=1.2, ls=style, label=f"{label} {value:.0f} {units.speed}")
    for w in trip.summary.get("warnings", []):  # faintly behind the speeds, as in the lane below
        stop = w["end_s"] if w.get("end_s") is not None else (times[-1] if times else w["start_s"])
        axis.axvspan(w["start_s"], stop, color=LEVEL_COLOURS.get(w["level"], "#cccccc"), alpha=0.15, lw=0)
    axis.set_ylabel(f"speed {units.speed}")
    axis.set_ylim(bottom=0)
    axis.margins(y=0.12)
    axis.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)


def _warnings(axis, warnings, kinds, end) -> None:
    """One lane per warning kind, a bar per warning coloured by its level."""
    from matplotlib.patches import Patch

    for lane, kind in enumerate(kinds):
        for w in (w for w in warnings if w["kind"] == kind):
            stop = w["end_s"] if w.get("end_s") is not None else end
            axis.broken_barh([(w["start_s"], max(stop - w["start_s"], end / 1000))], (lane - 0.35, 0.7),
                             color=LEVEL_COLOURS.get(w["level"], "#cccccc"))
    axis.set_yticks(range(len(kinds)), kinds, fontsize=8)
    axis.set_ylim(-0.6, max(len(kinds), 1) - 0.4)
    axis.invert_yaxis()
    axis.set_ylabel("warnings")
    if not kinds:
        axis.set_yticks([])
        axis.text(0.5, 0.5, "no warnings", transform=axis.transAxes, ha="center", va="center", fontsize=9,
                  color="#777777")
    levels = [Patch(color=colour, label=level) for level, colour in LEVEL_COLOURS.items()]
    axis.legend(handles=levels, title="level", loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
                title_fontsize=8, frameon=False)


def _economy(axis, trip, units, times) -> None:
    statuses = trip.report.statuses
    if trip.summary.get("km_per_l") is None and trip.summary.get("wh_per_km") is not None:
        axis.plot(times, [s.get("wh_per_km") for s in statuses], color="#27ae60", lw=1.2, label="trip Wh/km")
        axis.set_ylabel("Wh/km")
    else:
        instant = [units.economy_of(s.get("instant_km_per_l")) for s in statuses]
        running = [units.economy_of(s.get("trip_km_per_l")) for s in statuses]
        axis.plot(times, instant, color="#9b51e0", lw=0.7, label=f"instant {units.economy}")
        axis.plot(times, running, color="#27ae60", lw=1.5, label=f"trip {units.economy}")
        axis.set_ylabel(units.economy)
        axis.set_ylim(0, units.economy_of(60))
    axis.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)


def plot_simulation(path: str | Path, result) -> Path:
    """A simulation's traces: speed against the cycle, engine or motor
    speed, fuel rate or pack power."""
    plt = pyplot()
    path = check_plot_path(path)
    trace = result.trace
    figure, ax = plt.subplots(3, 1, sharex=True, figsize=(11, 7), layout="constrained")
    ax[0].plot(trace["time_s"], trace["target_kmh"], color=CYCLE_COLOUR, lw=4.5, alpha=0.45, label="cycle")
    ax[0].plot(trace["time_s"], trace["speed_kmh"], color=VEHICLE_COLOUR, lw=1.1, label="vehicle")
    ax[0].set_ylabel("speed km/h")
    ax[0].legend(loc="upper left", fontsize=8)
    electric = "engine_rpm" not in trace
    ax[1].plot(trace["time_s"], trace["motor_rpm" if electric else "engine_rpm"], lw=0.6)
    ax[1].set_ylabel("motor rpm" if electric else "engine rpm")
    ax[2].plot(trace["time_s"], trace["pack_power_kw" if electric else "fuel_lph"], lw=0.6)
    ax[2].set_ylabel("pack kW" if electric else "fuel L/h")
    ax[2].set_xlabel("time s")
    figure.suptitle(f"{result.truth['vehicle']} on {result.truth['cycle']}")
    save(figure, path, plt)
    return path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, path: Path, plt) -> None:
    try:
        figure.savefig(path, dpi=110, bbox_inches="tight")
    except (OSError, ValueError) as error:
        raise KeidriveError(f"cannot write plot {path}: {getattr(error, 'strerror', None) or error}") from None
    finally:
        plt.close(figure)
