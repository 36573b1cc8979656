"""The ground truth of a drive, summed as the physics goes: distance, fuel
and pack energy per phase and in all, the time the car fell behind the
trace. Nothing per step is kept, so a drive of any length sums in the same
memory; the sums are the step integrals of the physics (``keidrive.sim``)."""

from __future__ import annotations

import numpy as np

from . import physics

MPG_PER_KMPL = 2.352145833  # US mpg per km/L


def _r(x, nd=6):
    return None if x is None else float(round(x, nd))


class TruthSums:
    """``add`` every piece of the trace in order, then ``truth``."""

    def __init__(self, cycle):
        self.cycle = cycle
        self.ends = np.array([p[2] for p in cycle.phases])
        self.phases = [[0.0, 0.0, 0.0] for _ in cycle.phases]  # distance km, fuel L, energy kWh
        self.totals = [0.0, 0.0, 0.0]
        self.shortfall_steps = 0
        self.pack_chem_j = 0.0  # EV: chemical energy taken out of the pack, J / DT

    def add(self, a: dict) -> None:
        dt = physics.DT
        dist = a["v"] * dt / 1000.0
        fuel = a["fuel_lph"] * dt / 3600.0
        energy = a["pack_power_w"] * dt / 3.6e6 if "pack_power_w" in a else np.zeros_like(dist)
        ph = np.minimum(np.searchsorted(self.ends, a["t"] - 1e-9), len(self.ends) - 1)
        for i, sums in enumerate(self.phases):
            sel = ph == i
            for k, x in enumerate((dist, fuel, energy)):
                sums[k] += float(x[sel].sum())
        for k, x in enumerate((dist, fuel, energy)):
            self.totals[k] += float(x.sum())
        self.shortfall_steps += int(a["shortfall"].sum())
        if "pack_chem_w" in a:
            self.pack_chem_j += float(a["pack_chem_w"].sum())

    def truth(self, veh, n_frames: int) -> dict:
        cyc = self.cycle
        phases = []
        for (name, _t0, _t1), (d, f, e) in zip(cyc.phases, self.phases):
            phases.append({"name": name, "distance_km": _r(d), "fuel_l": _r(f),
                           "km_per_l": _r(d / f, 4) if f > 0 else None, "energy_kwh": _r(e)})
        d, f, e = self.totals
        kmpl = d / f if f > 0 else None
        return {
            "vehicle": veh.name,
            "cycle": cyc.name,
            "duration_s": _r(cyc.duration_s, 3),
            "distance_km": _r(d),
            "fuel_l": _r(f),
            "km_per_l": _r(kmpl, 4),
            "l_per_100km": _r(f / d * 100, 4) if f > 0 and d > 0 else None,
            "mpg_us": _r(kmpl * MPG_PER_KMPL, 4) if kmpl else None,
            "energy_kwh": _r(e),
            "phases": phases,
            "trace_shortfall_s": _r(float(self.shortfall_steps) * physics.DT, 2),
            "frames": int(n_frames),
        }

    def grid_wh_per_km(self, veh, truth: dict) -> float | None:
        """EV: energy the charger must put back per km: the chemical energy
        taken out of the pack (terminal energy plus its internal I^2R loss)
        over the charger's grid-to-pack efficiency - the Japanese figure is
        AC from the grid."""
        if veh.powertrain != "ev" or not truth["distance_km"]:
            return None
        chem_wh = self.pack_chem_j * physics.DT / 3600.0
        return chem_wh / truth["distance_km"] / veh.p("battery.charger_efficiency")

