"""Longitudinal vehicle and powertrain physics on a fixed 10 ms step.

``run(vehicle, cycle) -> Trace`` turns a drive cycle into per-step arrays;
``chunks(vehicle, cycle)`` yields the same trace a piece at a time (the
model's state carried from piece to piece), so a drive of any length is
simulated in bounded memory and the pieces put together are ``run``'s trace
bit for bit. Step ``k`` covers ``(t_k, t_k + DT]``; speeds are given at step
edges and every rate (fuel, power, wheel speed) is the mean over the step, so
the integral of any rate is an exact sum over steps.

Model (see README "Simulator" for the parameters and which are estimates):

* Driver: follows the target trace exactly where the car can; where the
  required tractive force exceeds what the powertrain (or the tyres) can give,
  it drives at that limit and the speed falls behind the trace, then catches
  up as soon as it can. Time more than 2 km/h below the trace (the WLTC
  speed tolerance) is the *shortfall*.
* Road load: rolling resistance ``m g Crr cos(a)``, aerodynamic drag
  ``rho Cd A v^2 / 2``, grade ``m g sin(a)`` and inertia of the mass plus the
  four wheels ``J/r^2``; engine (or motor) inertia ``J w dw/dt`` at the crank.
* Engine (ICE, hybrid): Willans-line fuel model - fuel power is indicated work
  over a constant indicated efficiency; indicated torque is brake torque plus
  friction (``fmep = a + b n + c n^2``, Heywood) plus pumping loss
  ``(p_exhaust - MAP) Vd / 4 pi``, where MAP follows indicated torque (air
  mass per cycle). The brake-specific fuel consumption map therefore follows
  from physics rather than a table (``bsfc_map()`` prints it). Full-load
  enrichment above 90 % load. Idle fuel, deceleration fuel cut above
  ``fuel_cut_min_rpm``. Turbo engines reach ``p_amb + boost_max`` at peak
  torque (quasi-steady boost, no lag).
* Cold start: coolant warms from ``coolant_initial_c`` with a lumped thermal
  mass heated by ``heat_to_coolant_fraction`` of fuel energy; while cold,
  friction is raised (oil viscosity), mixture enriched and idle speed raised.
* CVT: ratio holds the engine on an eco line (``eco_load`` of full-load
  torque, not below ``min_cruise_rpm``); a torque converter slips below
  ``lockup_kmh`` (fluid coupling: torque passes, speed difference is lost).
* Mild hybrid: ISG regenerates in fuel cut, assists accelerations, generates
  for the 12 V load only when the pack needs charge, idle-stops the engine at
  standstill / below ``idle_stop_max_kmh`` when warm and the pack allows;
  12 V pack with OCV(SOC) and internal resistance.
* EV: single reduction, motor copper (``T^2``) and iron (``w^1.5``) losses,
  inverter losses, regeneration limited by power and speed, coast regen, pack
  with OCV(SOC) and internal resistance.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from .cycles import Cycle
from .vehicles import Vehicle

DT = 0.01  # s, the fastest DBC cycle time
G = 9.81
P_AMB = 101.3  # kPa
P_EXH = 105.0  # kPa, exhaust back pressure (estimate)
SHORTFALL_KMH = 2.0
RPM = 60 / (2 * math.pi)
THERMAL_BLOCK = 100  # steps of the 1 s lumped thermal models (coolant, motor)
# Steps per piece of ``chunks``: two minutes of driving, whole thermal blocks.
CHUNK_STEPS = 12_000


@dataclass
class Trace:
    """Per-step arrays (all length N) plus segment bookkeeping.

    ``seg_start[i], seg_stop[i]`` are step index ranges of drive segments
    (separated by parked gaps) and ``seg_t0[i]`` their start times. A piece
    of a trace (``chunks``) may hold part of a segment: ``seg_number[i]`` is
    the segment's place in the cycle and ``seg_offset[i]`` the step of the
    segment its range starts at (0 for a whole segment)."""

    arrays: dict
    seg_start: list
    seg_stop: list
    seg_t0: list
    seg_number: list = field(default_factory=list)
    seg_offset: list = field(default_factory=list)

    def __getitem__(self, key):
        return self.arrays[key]

    def __contains__(self, key):
        return key in self.arrays

    def keys(self):
        return self.arrays.keys()


# ---------------------------------------------------------------- helpers

def _interp_curve(x, xs, ys):
    return np.interp(x, np.asarray(xs, float), np.asarray(ys, float))


class Engine:
    """Quasi-static SI engine: full-load torque, friction, MAP, fuel."""

    def __init__(self, veh: Vehicle):
        e = veh.data["engine"]
        self.vd = e["displacement_l"] / 1000.0
        self.k_mep = self.vd * 1000.0 / (4 * math.pi)  # Nm per kPa of MEP (4-stroke)
        self.cyl = e["cylinders"]
        self.curve_rpm = np.asarray(e["torque_curve_rpm"], float)
        self.curve_nm = np.asarray(e["torque_curve_nm"], float)
        self.idle_rpm = e["idle_rpm"]
        self.max_rpm = e["max_rpm"]
        self.eta_i = e["indicated_efficiency"]
        self.fmep = e["fmep_kpa"]
        self.inertia = e["inertia_kgm2"]
        self.cut_rpm = e["fuel_cut_min_rpm"]
        self.p0 = e["manifold_min_kpa"]
        self.boost_max = e.get("boost_max_kpa", 0.0)
        self.lhv = e["fuel_lhv_mj_per_l"] * 1e6  # J/L
        self.rho_f = e["fuel_density_kg_per_l"]
        self.inj_flow = e["injector_flow_mg_per_ms"]
        self.inj_dead = e["injector_dead_time_ms"]
        # MAP reference: NA -> ambient at full load for each speed;
        # turbo -> p_amb + boost_max at the peak indicated torque.
        self.turbo = self.boost_max > 0

    def t_max(self, rpm):
        return _interp_curve(rpm, self.curve_rpm, self.curve_nm)

    def t_fric(self, rpm, cold=0.0, fric_factor=0.0):
        k = np.asarray(rpm) / 1000.0
        a, b, c = self.fmep
        return (a + b * k + c * k * k) * self.k_mep * (1.0 + fric_factor * cold)

    def map_slope(self, rpm):
        """kPa of MAP per Nm of indicated torque."""
        if self.turbo:
            peak = np.max(self.curve_nm + self.t_fric(self.curve_rpm))
            return (P_AMB + self.boost_max - self.p0) / peak
        return (P_AMB - 3.0 - self.p0) / (self.t_max(rpm) + self.t_fric(rpm))

    def indicated(self, t_brake, rpm, cold=0.0, fric_factor=0.0):
        """Indicated torque and MAP for a brake torque >= 0 (vectorised)."""
        tf = self.t_fric(rpm, cold, fric_factor)
        s = self.map_slope(rpm)
        c = self.k_mep
        t_ind = (t_brake + tf + c * (P_EXH - self.p0)) / (1 + c * s)
        mapk = self.p0 + s * t_ind
        boosted = mapk >= P_EXH
        t_ind = np.where(boosted, t_brake + tf, t_ind)
        mapk = np.where(boosted, self.p0 + s * t_ind, mapk)
        return t_ind, mapk, tf

    def motoring(self, rpm, cold=0.0, fric_factor=0.0):
        """Drag torque (positive number) of the unfuelled engine, throttle closed."""
        tf = self.t_fric(rpm, cold, fric_factor)
        return tf + self.k_mep * (P_EXH - self.p0)

    def bsfc_map(self, rpms=(1000, 2000, 3000, 4000, 5000, 6000), loads=(0.1, 0.25, 0.5, 0.75, 1.0)):
        """Warm BSFC in g/kWh on a grid of speed x fraction of full-load torque."""
        out = {}
        for n in rpms:
            row = []
            for f in loads:
                tb = f * float(self.t_max(n))
                ti, _, _ = self.indicated(np.array(tb), np.array(float(n)))
                pf = float(ti) * n / RPM / self.eta_i
                grams = pf / self.lhv * self.rho_f * 1000 * 3600
                row.append(grams / (tb * n / RPM / 1000))
            out[n] = row
        return out


# ---------------------------------------------------------------- driver

def _road(veh: Vehicle):
    b = veh.data["body"]
    m = veh.test_mass_kg
    r = b["wheel_radius_m"]
    m_eff = m + 4 * b["wheel_inertia_kgm2"] / r ** 2
    k_aero = 0.5 * veh.data["environment"]["air_density_kg_m3"] * b["cd"] * b["frontal_area_m2"]
    return m, m_eff, r, k_aero, b["crr"]


def _road_force(v, grade, m, k_aero, crr):
    theta = np.arctan(grade)
    roll = np.where(v > 0.01, m * G * crr * np.cos(theta), 0.0)
    return roll + k_aero * v * v + m * G * np.sin(theta)


def _max_force_table(veh: Vehicle, eng: Engine | None):
    """Max steady tractive force at the wheels vs speed (table at 0.05 m/s)."""
    m, m_eff, r, k_aero, crr = _road(veh)
    b = veh.data["body"]
    v = np.arange(0, 80.0, 0.05)
    traction = b["tyre_mu"] * m * G * b["driven_axle_share"]
    fd = veh.data["driveline"]["final_drive"]
    eta_fd = veh.data["driveline"]["efficiency"]
    ww = v / r
    if veh.powertrain == "ev":
        mo = veh.data["motor"]
        wm = np.maximum(ww * fd, 1e-6)
        t = np.minimum(mo["max_torque_nm"], mo["max_power_kw"] * 1000 / wm)
        t = np.where(wm * RPM > mo["max_rpm"], 0.0, t)
        f = t * fd * eta_fd / r
    else:
        tr = veh.data["transmission"]
        eta = eta_fd * tr["efficiency"]
        acc = veh.data["electrical"]["accessory_w"] / veh.data["electrical"]["alternator_efficiency"]
        assist = 0.0
        if veh.powertrain == "mild_hybrid":
            h = veh.data["hybrid"]
            assist = h["isg_max_power_kw"] * 1000
            acc = 0.0
        n = np.linspace(eng.idle_rpm, eng.max_rpm, 120)
        w = n / RPM
        pe = (eng.t_max(n) - tr["spin_loss_nm"]) * w - acc
        # each (v, n): ratio needed; feasible if within the CVT range, or a
        # converter-slip launch at the lowest ratio below lockup.
        need = (w[None, :] / np.maximum(ww[:, None] * fd, 1e-6))
        ok = (need <= tr["ratio_low"]) & (need >= tr["ratio_high"])
        f_n = np.where(ok, (pe[None, :] + assist) * eta / np.maximum(v[:, None], 1e-6), 0.0)
        f = f_n.max(axis=1)
        # converter-slip launch at ratio_low (fluid coupling, torque ratio 1)
        t_launch = float(np.max(eng.t_max(np.minimum(n, 3000))) - tr["spin_loss_nm"])
        slip_ok = ww * fd * tr["ratio_low"] * RPM < eng.max_rpm
        f_launch = np.where(slip_ok, t_launch * tr["ratio_low"] * fd * eta / r, 0.0)
        f = np.maximum(f, np.where(v * 3.6 < max(tr["lockup_kmh"], 20), f_launch, 0.0))
    return v, np.minimum(f, traction)


def _follow(vt, grade, ftab, m, m_eff, k_aero, crr, start=None):
    """Achieved speeds at step edges (len N+1) given targets at edges, from
    ``start`` at the first edge (None: on target, as a segment starts)."""
    n = len(vt) - 1
    vm = (vt[1:] + vt[:-1]) / 2
    need = m_eff * np.diff(vt) / DT + _road_force(vm, grade, m, k_aero, crr)
    idx = np.minimum((vt[:-1] * 20).astype(np.int64), len(ftab) - 1)
    ok = need <= ftab[idx] + 1e-9
    if ok.all() and (start is None or start == vt[0]):
        return vt.copy()
    v = vt.copy()
    vtl, okl, gl, fl = vt.tolist(), ok.tolist(), grade.tolist(), ftab.tolist()
    nf = len(fl) - 1
    cur = vtl[0] if start is None else start
    v[0] = cur
    sin_cos = [(G * m * math.sin(math.atan(g)), G * m * crr * math.cos(math.atan(g))) for g in gl]
    for k in range(n):
        nxt = vtl[k + 1]
        if cur == vtl[k] and okl[k]:
            cur = nxt
        else:
            gs, rc = sin_cos[k]
            # force to reach the target, evaluated at the current speed
            need_k = m_eff * (nxt - cur) / DT + (rc if cur > 0.01 else 0.0) + k_aero * cur * cur + gs
            i = int(cur * 20)
            fmax = fl[i if i < nf else nf]
            if need_k <= fmax:
                cur = nxt
            else:
                a = (fmax - (rc if cur > 0.01 else 0.0) - k_aero * cur * cur - gs) / m_eff
                cur = max(0.0, cur + a * DT)
                if cur > nxt:
                    cur = nxt
        v[k + 1] = cur
    return v


# ---------------------------------------------------------------- main

class _Segment:
    """A drive segment of the cycle on the 10 ms grid: ``n`` steps from ``t0``."""

    def __init__(self, cycle: Cycle, i0: int, i1: int):
        t = cycle.time_s
        self.t0 = float(t[i0])
        dur = float(t[i1] - self.t0)
        self.n = max(10, int(math.ceil(dur / 0.1 - 1e-9)) * 10)
        self.end = float(self.t0 + DT * self.n)
        self.ts, self.vs, self.gs = t[i0:i1 + 1], cycle.speed_mps[i0:i1 + 1], cycle.grade[i0:i1 + 1]

    def grid(self, k0: int, k1: int):
        """(edges, target speeds at the edges, grade per step) of steps k0 to k1 - 1."""
        edges = self.t0 + DT * np.arange(k0, k1 + 1)
        if len(self.ts) == 1:
            vt = np.full(k1 - k0 + 1, self.vs[0])
            g = np.full(k1 - k0, self.gs[0])
        else:
            vt = np.interp(edges, self.ts, self.vs)
            g = np.interp(edges[:-1] + DT / 2, self.ts, self.gs)
        # a segment starts and ends at the cycle's speeds; the first edge is exact
        return edges, vt, g


def run(veh: Vehicle, cycle: Cycle) -> Trace:
    return concatenate(chunks(veh, cycle))


def chunks(veh: Vehicle, cycle: Cycle, steps: int = CHUNK_STEPS):
    """``run``'s trace as consecutive pieces of ``steps`` steps (the last
    one shorter), each step computed exactly as ``run`` computes it."""
    if steps <= 0 or steps % THERMAL_BLOCK:
        raise ValueError(f"a piece is a positive multiple of {THERMAL_BLOCK} steps, not {steps}")
    segments = [_Segment(cycle, i0, i1) for i0, i1 in cycle.segments()]
    gaps = [0.0] + [seg.t0 - prev.end for prev, seg in itertools.pairwise(segments)]
    model = (_Electric if veh.powertrain == "ev" else _Combustion)(veh, segments, gaps)
    pieces, filled = [], 0
    for number, seg in enumerate(segments):
        k = 0
        while k < seg.n:
            take = min(seg.n - k, steps - filled)
            pieces.append((number, k, k + take))
            filled += take
            k += take
            if filled == steps:
                yield model.trace(pieces)
                pieces, filled = [], 0
    if pieces:
        yield model.trace(pieces)


def step_span(cycle: Cycle) -> tuple[float, float]:
    """When ``run``'s first and last steps end (its trace's ``t[0]`` and
    ``t[-1]``, the same floats), without running it."""
    segments = [_Segment(cycle, i0, i1) for i0, i1 in cycle.segments()]
    return segments[0].t0 + DT, segments[-1].end


def concatenate(traces) -> Trace:
    """One trace of consecutive pieces (``chunks``), its segments whole again."""
    arrays: dict = {}
    starts, stops, t0s, numbers = [], [], [], []
    n = 0
    for tr in traces:
        for key, x in tr.arrays.items():
            arrays.setdefault(key, []).append(x)
        for s, e, t0, number in zip(tr.seg_start, tr.seg_stop, tr.seg_t0, tr.seg_number):
            if numbers and numbers[-1] == number:
                stops[-1] = n + e
            else:
                starts.append(n + s)
                stops.append(n + e)
                t0s.append(t0)
                numbers.append(number)
        n += len(tr.arrays["t"])
    return Trace({k: np.concatenate(x) for k, x in arrays.items()}, starts, stops, t0s, numbers, [0] * len(numbers))


class _Model:
    """The car over consecutive pieces of the cycle; what one piece leaves
    (the achieved speed at its last edge, temperatures, charge, the crank or
    motor speed of its last step) the next starts from."""

    def __init__(self, veh: Vehicle, segments: list, gaps: list):
        self.veh = veh
        self.segments = segments
        self.gaps = gaps
        self.m, self.m_eff, self.r, self.k_aero, self.crr = _road(veh)
        self.eng = Engine(veh) if veh.powertrain != "ev" else None
        _, self.ftab = _max_force_table(veh, self.eng)
        self.speed = None  # achieved speed at the last edge so far
        self.w_last = 0.0  # crank (motor) speed of the last step so far, rad/s

    def trace(self, pieces) -> Trace:
        """The trace of ``pieces``: (segment number, first step, stop step) in order."""
        m, m_eff, k_aero, crr = self.m, self.m_eff, self.k_aero, self.crr
        parts = {k: [] for k in ("t", "vt", "v0", "v1", "grade")}
        seg_start, seg_stop, seg_t0, lengths = [], [], [], []
        n_tot = 0
        for number, k0, k1 in pieces:
            seg = self.segments[number]
            edges, vt, g = seg.grid(k0, k1)
            v = _follow(vt, g, self.ftab, m, m_eff, k_aero, crr, None if k0 == 0 else self.speed)
            self.speed = float(v[-1])
            parts["t"].append(edges[1:])
            parts["vt"].append(vt[1:])
            parts["v0"].append(v[:-1])
            parts["v1"].append(v[1:])
            parts["grade"].append(g)
            seg_start.append(n_tot)
            n_tot += len(g)
            seg_stop.append(n_tot)
            seg_t0.append(seg.t0)
            lengths.append(len(g))
        a = {k: np.concatenate(vv) for k, vv in parts.items()}
        v0, v1 = a["v0"], a["v1"]
        vm = (v0 + v1) / 2
        acc = (v1 - v0) / DT
        f_road = _road_force(vm, a["grade"], m, k_aero, crr)
        f_wheel = m_eff * acc + f_road
        a.update(v=vm, accel=acc, f_wheel=f_wheel, p_wheel=f_wheel * vm,
                 shortfall=(a["vt"] - v1) * 3.6 > SHORTFALL_KMH)
        numbers = [number for number, _, _ in pieces]
        tr = Trace(a, seg_start, seg_stop, seg_t0, numbers, [k0 for _, k0, _ in pieces])
        self.powertrain(tr, np.repeat(np.asarray(numbers, np.int64), lengths))
        return tr

    def speed_change(self, tr: Trace, w) -> np.ndarray:
        """d(w)/dt per step within each segment (0 where a segment starts)."""
        dw = np.zeros(len(w))
        for s, e, k0 in zip(tr.seg_start, tr.seg_stop, tr.seg_offset):
            dw[s + 1:e] = np.diff(w[s:e]) / DT
            if k0:
                dw[s] = (w[s] - self.w_last) / DT
        self.w_last = float(w[-1])
        return dw

    def powertrain(self, tr: Trace, seg_id) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------- ICE / hybrid

class _Coolant:
    """Coolant temperature per step from a 1 s lumped thermal model, piece
    by piece (pieces start on a block)."""

    def __init__(self, veh: Vehicle, gaps: list):
        self.veh = veh
        self.gaps = gaps
        self.temp = veh.data["thermal"]["coolant_initial_c"]  # at the end of the last block
        self.segment = 0  # of the last block

    def __call__(self, p_fuel_warm, p_fric_fuel, seg_id):
        veh = self.veh
        th = veh.data["thermal"]
        amb = veh.data["environment"]["ambient_c"]
        c_th = th["heat_capacity_kj_per_k"] * 1000
        frac = th["heat_to_coolant_fraction"]
        h = th["loss_w_per_k"]
        t_st = th["thermostat_c"]
        t_init = th["coolant_initial_c"]
        span = t_st - min(t_init, amb, t_st - 1)
        enrich, fric = th["cold_enrichment"], th["cold_friction_factor"]
        n = len(p_fuel_warm)
        blk = THERMAL_BLOCK
        nb = (n + blk - 1) // blk
        pad = nb * blk - n

        def bsum(x):
            return np.concatenate([x, np.zeros(pad)]).reshape(nb, blk).sum(1) * DT

        e_warm, e_fric = bsum(p_fuel_warm).tolist(), bsum(p_fric_fuel).tolist()
        b_seg = seg_id[::blk].tolist()
        temp = first = self.temp
        out = []
        last_seg = self.segment
        for j in range(nb):
            if b_seg[j] != last_seg:  # parked gap: Newton cooling, 1.5 h time constant (estimate)
                gap = self.gaps[b_seg[j]]
                temp = amb + (temp - amb) * math.exp(-gap / 5400.0)
                last_seg = b_seg[j]
            cold = min(max((t_st - temp) / span, 0.0), 1.5)
            e = e_warm[j] * (1 + enrich * cold) + e_fric[j] * fric * cold
            dt_blk = blk * DT
            q = frac * e - h * (temp - amb) * dt_blk
            temp += q / c_th
            if temp > t_st:  # thermostat opens, radiator holds the set point
                temp = t_st
            out.append(temp)
        self.temp, self.segment = temp, last_seg
        out = np.asarray(out)
        # linear interpolation per step between block ends
        start = np.concatenate([[first], out[:-1]])
        k = np.arange(n)
        jb = k // blk
        frac_in = (k % blk + 1) / blk
        return start[jb] + (out[jb] - start[jb]) * frac_in


class _Combustion(_Model):
    """An engine car (a mild hybrid too): coolant temperature, the crank's
    speed and the hybrid's 12 V pack carry from piece to piece."""

    def __init__(self, veh: Vehicle, segments: list, gaps: list):
        super().__init__(veh, segments, gaps)
        self.coolant = _Coolant(veh, gaps)
        self.pack = _pack_state(veh) if veh.powertrain == "mild_hybrid" else None

    def powertrain(self, tr: Trace, seg_id) -> None:
        veh, eng = self.veh, self.eng
        a = tr.arrays
        d = veh.data
        tx, th, el = d["transmission"], d["thermal"], d["electrical"]
        r = d["body"]["wheel_radius_m"]
        fd, eta_fd = d["driveline"]["final_drive"], d["driveline"]["efficiency"]
        hybrid = veh.powertrain == "mild_hybrid"
        v, acc, f_wheel = a["v"], a["accel"], a["f_wheel"]
        n = len(v)
        ww = v / r
        t_wheel = f_wheel * r
        # --- CVT ratio on the eco line
        eta = eta_fd * tx["efficiency"]
        n_tab = np.linspace(eng.idle_rpm, eng.max_rpm, 200)
        p_eco = np.maximum.accumulate(tx["eco_load"] * eng.t_max(n_tab) * n_tab / RPM)
        p_req = np.maximum(f_wheel * v, 0) / eta
        n_eco = np.interp(p_req, p_eco, n_tab)
        n_tgt = np.maximum(n_eco, tx["min_cruise_rpm"])
        w_in_per_ratio = ww * fd
        ratio = np.clip(n_tgt / RPM / np.maximum(w_in_per_ratio, 1e-9), tx["ratio_high"], tx["ratio_low"])
        ratio = np.where(v < 0.05, tx["ratio_low"], ratio)
        w_in = w_in_per_ratio * ratio
        # --- thermal state needs a preliminary warm fuel estimate
        amb = d["environment"]["ambient_c"]
        t_in = np.where(t_wheel >= 0, t_wheel / (ratio * fd * eta), t_wheel * eta / (ratio * fd)) + tx["spin_loss_nm"]
        idle_w = eng.idle_rpm / RPM
        w_e0 = np.maximum(w_in, idle_w)
        slip = (v * 3.6 < tx["lockup_kmh"]) & (t_in > 0)
        w_e0 = np.where(slip, np.maximum(w_e0, np.minimum(n_eco, 2200) / RPM), w_e0)
        rpm0 = w_e0 * RPM
        t_acc_conv = el["accessory_w"] / el["alternator_efficiency"] / w_e0
        tb0 = np.maximum(t_in, 0) + (0 if hybrid else t_acc_conv)
        cut0 = (t_in < 0) & (rpm0 >= eng.cut_rpm)
        ti0, _, tf0 = eng.indicated(tb0, rpm0)
        p_fuel_warm = np.where(cut0, 0.0, ti0 * w_e0 / eng.eta_i)
        p_fric_fuel = np.where(cut0, 0.0, tf0 * w_e0 / eng.eta_i)
        cool = self.coolant(p_fuel_warm, p_fric_fuel, seg_id)
        t_st = th["thermostat_c"]
        span = t_st - min(th["coolant_initial_c"], amb, t_st - 1)
        cold = np.clip((t_st - cool) / span, 0.0, 1.5)
        # --- engine speed with cold fast idle and the converter
        idle_rpm = eng.idle_rpm + (th["fast_idle_rpm"] - eng.idle_rpm) * np.minimum(cold, 1.0)
        w_e = np.maximum(w_in, idle_rpm / RPM)
        w_e = np.where(slip, np.maximum(w_e, np.minimum(n_eco, 2200) / RPM), w_e)
        # engine inertia torque (speed changes within a segment)
        # crank torque the engine (+ISG) must give, excl. accessories
        t_req = t_in + eng.inertia * self.speed_change(tr, w_e)
        rpm = w_e * RPM
        # --- hybrid energy management (stateful), conventional alternator otherwise
        t_motor = eng.motoring(rpm, cold, th["cold_friction_factor"])
        if hybrid:
            hy = _hybrid(veh, self.pack, a, t_req, w_e, cool, t_motor)
            t_isg = hy["t_isg_crank"]  # + assist, - generate/regen
            running = hy["running"]
            t_acc = np.zeros(n)
        else:
            t_isg = np.zeros(n)
            running = np.ones(n, bool)
            t_acc = el["accessory_w"] / el["alternator_efficiency"] / w_e
        t_b = t_req + t_acc - t_isg
        cut = running & (t_b < 0) & (rpm >= eng.cut_rpm)
        # engine torque: fuel cut -> motoring drag (brakes do the rest); low-rpm
        # deceleration -> idle fuelling at zero brake torque
        eng_t = np.where(cut, np.maximum(t_b, -t_motor), np.maximum(t_b, 0.0))
        t_max_n = eng.t_max(rpm)
        eng_t = np.minimum(eng_t, t_max_n)
        fuelled = running & ~cut
        t_pos = np.where(fuelled, np.maximum(eng_t, 0.0), 0.0)
        ti, mapk, tf = eng.indicated(t_pos, rpm, cold, th["cold_friction_factor"])
        load = np.clip(t_pos / t_max_n, 0, 1.2)
        enrich = (1 + th["cold_enrichment"] * cold) * (1 + 0.15 * np.clip((load - 0.9) / 0.1, 0, 1))
        p_fuel = np.where(fuelled, ti * w_e / eng.eta_i * enrich, 0.0)
        fuel_lph = p_fuel / eng.lhv * 3600.0
        mapk = np.where(fuelled, mapk, np.where(cut, eng.p0, P_AMB))
        rpm = np.where(running, rpm, 0.0)
        eng_t = np.where(running, eng_t, 0.0)
        # brake pedal: friction brakes needed beyond engine drag / regen, or standstill
        brake = (t_b < -t_motor - 1.0) | ((t_b < 0) & ~cut & (acc < -0.3)) | (a["v1"] < 0.01)
        brake &= (acc < -0.05) | (a["v1"] < 0.01)
        pedal = np.where(fuelled & (t_b > 0), np.clip((t_b + np.maximum(t_isg, 0)) / t_max_n, 0, 1) * 100, 0.0)
        throttle = np.where(
            fuelled, np.clip((np.minimum(mapk, P_AMB - 3) - eng.p0) / (P_AMB - 3 - eng.p0), 0, 1) ** 1.5 * 100, 0.0)
        afr = np.where(fuelled, 14.7 / enrich, np.where(cut, 25.5, 0.0))
        a.update(
            ratio=ratio, engine_rpm=rpm, engine_torque=eng_t, fuel_lph=fuel_lph,
            fuel_cut=cut & running, running=running, map_kpa=mapk, boost_kpa=mapk - P_AMB,
            coolant_c=cool, pedal=pedal, throttle=throttle, brake=brake, afr=afr, load=load,
            isg_torque_crank=t_isg,
        )
        if hybrid:
            a.update(hy)
            a["pack_power_w"] = hy["pack_power_w"]


def _pack_state(veh: Vehicle) -> dict:
    """The mild hybrid's state as a drive starts: the 12 V pack's charge and the idle-stop machine."""
    return {"soc": veh.data["hybrid"]["soc_initial_pct"] / 100, "stopped_engine": False, "generating": False,
            "start_left": 0.0}


def _hybrid(veh, state, a, t_req, w_e, cool, t_motor):
    """ISG energy management and the 12 V lithium-ion pack (10 ms loop), from
    ``state`` (``_pack_state``), which it leaves as the last step did."""
    h = veh.data["hybrid"]
    el = veh.data["electrical"]
    belt = h["isg_belt"] if "isg_belt" in h else h["belt_ratio"]
    p_lim = h["isg_max_power_kw"] * 1000
    t_lim_crank = h["isg_max_torque_nm"] * belt
    eta = h["isg_efficiency"]
    cap_as = h["pack_capacity_ah"] * 3600
    ocv0, ocv1 = h["pack_ocv_empty_v"], h["pack_ocv_full_v"]
    rint = h["pack_resistance_ohm"]
    soc = state["soc"]
    soc_min, soc_max = h["soc_min_pct"] / 100, h["soc_max_pct"] / 100
    soc_assist = h["assist_soc_min_pct"] / 100
    soc_target = h["soc_initial_pct"] / 100
    a_assist = h["assist_min_accel_mps2"]
    v_stop = h["idle_stop_max_kmh"] / 3.6
    cool_min = h["idle_stop_min_coolant_c"]
    e_start = h["restart_energy_j"]
    p_acc = el["accessory_w"]
    n = len(t_req)
    vl, al, fl = a["v"].tolist(), a["accel"].tolist(), a["f_wheel"].tolist()
    tl, wl, cl, tml = t_req.tolist(), w_e.tolist(), cool.tolist(), t_motor.tolist()
    t_isg = [0.0] * n
    mode = [0] * n
    running = [True] * n
    p_pack = [0.0] * n
    volt = [0.0] * n
    cur = [0.0] * n
    socs = [0.0] * n
    inhibit = [0] * n
    stopped_engine, generating, start_left = state["stopped_engine"], state["generating"], state["start_left"]
    for k in range(n):
        vk, ak, tk, wk = vl[k], al[k], tl[k], wl[k]
        ocv = ocv0 + (ocv1 - ocv0) * soc
        # ---- idle stop state machine
        wants_drive = fl[k] > 0 and ak > 0.0
        if stopped_engine:
            if wants_drive or soc < soc_min:
                stopped_engine = False
                start_left = e_start
        else:
            can_stop = vk < v_stop and ak <= 0.0 and (fl[k] <= 0.0 or vk < 0.01)
            if can_stop:
                if cl[k] < cool_min:
                    inhibit[k] = 1
                elif soc < soc_min + 0.1:
                    inhibit[k] = 2
                else:
                    stopped_engine = True
            elif vk > v_stop:
                inhibit[k] = 3
        p_isg_elec = 0.0
        tq = 0.0
        md = 0
        if stopped_engine:
            running[k] = False
        else:
            tc_lim = min(t_lim_crank, p_lim / max(wk, 1.0))
            if start_left > 0:
                md = 4
                p_isg_elec = min(p_lim, start_left / DT)
                start_left -= p_isg_elec * DT
            elif tk < 0 and vk > 1.5 and soc < soc_max:
                tq = -min(tc_lim, -tk + tml[k] * 0.0)  # regen replaces friction braking
                md = 3
            elif wants_drive and ak > a_assist and soc > soc_assist:
                tq = min(tc_lim, tk)
                md = 1
            elif soc < soc_target - 0.01 or (generating and soc < soc_target + 0.01):
                # generate the 12 V load plus a gentle recharge
                p_gen = p_acc + 300.0
                tq = -min(tc_lim, p_gen / eta / max(wk, 1.0))
                md = 2
            if md in (1,):
                p_isg_elec = tq * wk / eta
            elif md in (2, 3):
                p_isg_elec = tq * wk * eta
        generating = md == 2
        p = p_acc + p_isg_elec
        disc = ocv * ocv - 4 * rint * p
        i = (ocv - math.sqrt(disc)) / (2 * rint) if disc > 0 else ocv / (2 * rint)
        vt = ocv - i * rint
        soc -= i * DT / cap_as
        t_isg[k], mode[k], p_pack[k], volt[k], cur[k], socs[k] = tq, md, vt * i, vt, i, soc * 100
    state.update(soc=soc, stopped_engine=stopped_engine, generating=generating, start_left=start_left)
    running = np.array(running)
    mode = np.array(mode)
    return {
        "t_isg_crank": np.array(t_isg), "isg_mode": mode, "running": running,
        "pack_power_w": np.array(p_pack), "pack_voltage": np.array(volt),
        "pack_current": np.array(cur), "pack_soc": np.array(socs),
        "idle_stop": ~running, "regen": mode == 3, "assist": mode == 1,
        "idle_stop_inhibit": np.array(inhibit), "isg_rpm": w_e * RPM * belt * running,
        "isg_torque": np.array(t_isg) / belt,
    }


# ---------------------------------------------------------------- EV

class _Electric(_Model):
    """A battery-electric car: the energy drawn from the pack, the motor's
    temperature and speed carry from piece to piece."""

    def __init__(self, veh: Vehicle, segments: list, gaps: list):
        super().__init__(veh, segments, gaps)
        self.drawn = 0.0  # sum of the pack's power over the steps so far
        self.motor_temp = veh.data["environment"]["ambient_c"]

    def powertrain(self, tr: Trace, seg_id) -> None:
        veh, m = self.veh, self.m
        a = tr.arrays
        d = veh.data
        mo, bt = d["motor"], d["battery"]
        r = d["body"]["wheel_radius_m"]
        fd, eta = d["driveline"]["final_drive"], d["driveline"]["efficiency"]
        v, acc, f_wheel = a["v"], a["accel"], a["f_wheel"]
        n = len(v)
        wm = v / r * fd
        t_wheel = f_wheel * r
        t_req = np.where(t_wheel >= 0, t_wheel / (fd * eta), t_wheel * eta / fd)
        t_req = t_req + mo["rotor_inertia_kgm2"] * self.speed_change(tr, wm)
        t_drive_max = np.minimum(mo["max_torque_nm"], mo["max_power_kw"] * 1000 / np.maximum(wm, 1e-3))
        regen_ok = v * 3.6 > mo["regen_min_kmh"]
        t_regen_max = np.where(
            regen_ok, np.minimum(mo["max_torque_nm"], mo["regen_max_power_kw"] * 1000 / np.maximum(wm, 1e-3)), 0.0)
        # braking: lift-off (coast) regen up to coast_regen_mps2 is all electric;
        # beyond it the brake pedal blends, and the rear axle's friction brakes
        # keep their share (1 - regen_brake_share) of the extra braking force
        t_coast = mo["coast_regen_mps2"] * m * r / fd * eta
        extra = np.minimum(t_req + t_coast, 0.0)
        t_brk = np.where(t_req < 0, np.maximum(t_req, -t_coast) + extra * mo["regen_brake_share"], t_req)
        t_m = np.clip(t_brk, -t_regen_max, t_drive_max)
        wmax = mo["max_rpm"] / RPM
        # reduction gear and bearing drag at the motor shaft (oil churning)
        t_m = t_m + np.where(wm > 0.1, mo["gear_drag_nm"], 0.0)
        p_mech = t_m * wm
        loss = mo["copper_loss_at_max_torque_w"] * (t_m / mo["max_torque_nm"]) ** 2 \
            + mo["iron_loss_at_max_rpm_w"] * (wm / wmax) ** 1.5
        p_elec = p_mech + loss
        p_dc = p_elec + mo["inverter_loss_fraction"] * np.abs(p_elec) + mo["inverter_fixed_loss_w"]
        p_aux = np.full(n, float(d["electrical"]["accessory_w"]))
        p_pack = p_dc + p_aux
        cap_j = bt["capacity_kwh"] * 3.6e6
        ocv0, ocv1, rint = bt["ocv_empty_v"], bt["ocv_full_v"], bt["resistance_ohm"]
        soc0 = bt["soc_initial_pct"] / 100
        # two passes: SOC from energy at nominal OCV, then terminal voltage
        drawn = np.cumsum(np.concatenate(([self.drawn], p_pack)))[1:]  # J / DT since the drive started
        self.drawn = float(drawn[-1])
        soc = soc0 - drawn * DT / cap_j
        ocv = ocv0 + (ocv1 - ocv0) * np.clip(soc, 0, 1)
        disc = np.maximum(ocv * ocv - 4 * rint * p_pack, 1.0)
        cur = (ocv - np.sqrt(disc)) / (2 * rint)
        volt = ocv - cur * rint
        p_pack = volt * cur
        brake = ((f_wheel < -mo["coast_regen_mps2"] * m) & (acc < -0.05)) | (a["v1"] < 0.01)
        pedal = np.where(t_m > 0, np.clip(t_m / np.maximum(t_drive_max, 1e-3), 0, 1) * 100, 0.0)
        # motor / inverter temperature: 1 s lumped model (estimate: 8 kJ/K, 20 W/K)
        amb = d["environment"]["ambient_c"]
        blk = THERMAL_BLOCK
        nb = (n + blk - 1) // blk
        lossb = np.concatenate([loss, np.zeros(nb * blk - n)]).reshape(nb, blk).mean(1).tolist()
        temp, out = self.motor_temp, []
        for pl in lossb:
            temp += (pl - 20.0 * (temp - amb)) * 1.0 / 8000.0
            out.append(temp)
        self.motor_temp = temp
        mt = np.repeat(np.array(out), blk)[:n]
        a.update(
            pack_chem_w=ocv * cur, motor_rpm=wm * RPM, motor_torque=t_m, torque_request=t_m, pack_power_w=p_pack,
            pack_voltage=volt, pack_current=cur, pack_soc=np.clip(soc, 0, 1) * 100,
            regen=t_m < -0.5, brake=brake, pedal=pedal, motor_temp=mt,
            inverter_temp=amb + (mt - amb) * 0.6, aux_w=p_aux, fuel_lph=np.zeros(n),
            running=np.ones(n, bool),
        )
