"""Intake air as an engine ECU measures it: manifold pressure and
temperature, air mass flow, commanded lambda and fuel-system status.

``run(veh, trace) -> dict`` of per-10-ms-step arrays, consistent with the
simulator's fuel by construction of the physics, not by a fit:

* Air mass. Where the engine is fuelled the air is the fuel mass times the
  AFR of the physics (stoichiometric 14.7 leaned by nothing, enriched cold
  and at full load), so a MAF sensor reading it reproduces the fuel only
  with the commanded lambda. In deceleration fuel cut the closed throttle
  still passes air (``CUT_VE`` at the minimum manifold pressure) and no fuel.
* Manifold pressure. The physics gives MAP as the air per cycle needs it at
  ambient temperature (``physics.Engine.indicated``); at a hotter intake the
  same air mass needs proportionally more pressure (ideal gas), so the MAP
  an ECU reports is ``map_kpa x T_intake / T_ambient``.
* Volumetric efficiency, the map a speed-density estimate needs and the
  firmware is not told: ``VE = m_air R T / (MAP V_d n / 120)``. It follows
  from the physics: it falls at low MAP (residual gas and the closed-throttle
  intercept ``manifold_min_kpa`` of the Willans line) and follows the torque
  curve with rpm. ``ve_map(veh)`` prints it on a grid.
* Intake temperature. Under-bonnet heat soak (rising with coolant
  temperature, swept away by air flow) and, for a turbo, compressor heating
  (isentropic efficiency ``COMPRESSOR_EFF``) left after an intercooler of
  effectiveness ``INTERCOOLER_EFF``; a first-order lag of ``IAT_TAU_S``.
  All four are estimates.
"""

from __future__ import annotations

import math

import numpy as np

from . import physics
from .vehicles import Vehicle

R_AIR = 287.05          # J/(kg K), dry air
AFR_STOICH = 14.7       # gasoline, mass
CUT_VE = 0.35           # estimate: closed-throttle breathing in fuel cut
SOAK_K = 12.0           # estimate: IAT rise above ambient, hot bay, no air flow
SOAK_AIR_GS = 6.0       # estimate: air flow (g/s) that halves the soak
COMPRESSOR_EFF = 0.70   # estimate: small turbo compressor, isentropic
INTERCOOLER_EFF = 0.70  # estimate: air-to-air intercooler effectiveness
IAT_TAU_S = 20.0        # estimate: manifold and intake tract thermal lag

# SAE J1979 PID 0x03 fuel system status: 2 closed loop, 4 open loop for
# load or deceleration fuel cut, 1 open loop (cold, not yet closed)
FUEL_CLOSED = 2
FUEL_OPEN_LOAD_OR_CUT = 4
FUEL_OPEN_COLD = 1


def run(veh: Vehicle, trace) -> dict:
    a = trace.arrays if hasattr(trace, "arrays") else trace
    e = veh.data["engine"]
    amb_k = veh.data["environment"]["ambient_c"] + 273.15
    vd = e["displacement_l"] / 1000.0
    rpm = a["engine_rpm"]
    running = a["running"]
    cut = a["fuel_cut"] & running
    fuelled = running & ~cut
    fuel_kgps = a["fuel_lph"] * e["fuel_density_kg_per_l"] / 3600.0
    afr = np.where(fuelled, a["afr"], 0.0)
    p_cut = e["manifold_min_kpa"]
    cut_air = CUT_VE * p_cut * 1000 * vd * rpm / 120.0 / (R_AIR * amb_k)
    air = np.where(fuelled, fuel_kgps * afr, np.where(cut, cut_air, 0.0))
    # intake temperature (needs the air flow for the soak)
    cool = a["coolant_c"]
    thermostat = veh.data["thermal"]["thermostat_c"]
    warm = np.clip((cool - (amb_k - 273.15)) / max(thermostat - (amb_k - 273.15), 1.0), 0.0, 1.0)
    soak = SOAK_K * warm / (1.0 + air * 1000.0 / SOAK_AIR_GS)
    boost = np.clip(a["map_kpa"] - physics.P_AMB, 0.0, None)
    pr = (physics.P_AMB + boost) / physics.P_AMB
    compressor = amb_k * (pr ** 0.2857 - 1.0) / COMPRESSOR_EFF * (1.0 - INTERCOOLER_EFF)
    target = amb_k + soak + compressor
    iat_k = _lag(target, IAT_TAU_S)
    map_kpa = np.where(running, np.where(fuelled, a["map_kpa"], p_cut) * iat_k / amb_k, physics.P_AMB)
    lam = np.where(fuelled, a["afr"] / AFR_STOICH, 1.0)
    cold = (cool < thermostat - 20.0) & fuelled
    full_load = fuelled & (a["load"] > 0.9)  # the physics' full-load enrichment
    status = np.where(
        ~running, 0,
        np.where(cut | full_load, FUEL_OPEN_LOAD_OR_CUT, np.where(cold, FUEL_OPEN_COLD, FUEL_CLOSED)),
    ).astype(np.int64)
    return {
        "map_kpa": map_kpa,
        "iat_c": iat_k - 273.15,
        "maf_gs": air * 1000.0,
        "lambda": lam,
        "fuel_status": status,
        "ve": np.where(running & (rpm > 0), air * R_AIR * iat_k * 120.0 / (np.maximum(map_kpa, 1.0) * 1000 * vd
                                                                            * np.maximum(rpm, 1.0)), 0.0),
    }


def _lag(x, tau_s):
    """First-order lag of a per-step array, evaluated on 1 s blocks."""
    blk = round(1.0 / physics.DT)
    n = len(x)
    nb = (n + blk - 1) // blk
    means = np.concatenate([x, np.full(nb * blk - n, x[-1] if n else 0.0)]).reshape(nb, blk).mean(1).tolist()
    k = 1.0 - math.exp(-1.0 / tau_s)
    y = means[0] if means else 0.0
    out = []
    for m in means:
        y += (m - y) * k
        out.append(y)
    return np.repeat(np.asarray(out), blk)[:n]


def ve_map(veh: Vehicle, rpms=(1000, 2000, 3000, 4000, 5000, 6000), maps=(30, 40, 60, 80, 100)) -> dict:
    """The engine's volumetric efficiency (warm, stoichiometric) on a grid of
    rpm x manifold pressure (kPa, at ambient temperature): ``{rpm: [VE ...]}``;
    None where that MAP is beyond what the engine reaches at that speed."""
    eng = physics.Engine(veh)
    e = veh.data["engine"]
    amb_k = veh.data["environment"]["ambient_c"] + 273.15
    vd = e["displacement_l"] / 1000.0
    lhv_kg = eng.lhv / eng.rho_f
    out = {}
    for n in rpms:
        s = float(eng.map_slope(np.array(float(n))))
        t_full, _, _ = eng.indicated(np.array(float(eng.t_max(n))), np.array(float(n)))
        row = []
        for p in maps:
            t_ind = (p - eng.p0) / s
            if t_ind <= 0 or t_ind > float(t_full) * 1.0001:
                row.append(None)
                continue
            fuel_per_cycle = t_ind * 4 * math.pi / eng.eta_i / lhv_kg  # kg per two revolutions
            air = fuel_per_cycle * AFR_STOICH
            row.append(air * R_AIR * amb_k / (p * 1000 * vd))
        out[n] = row
    return out
