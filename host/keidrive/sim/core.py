"""simulate(): physics trace -> CAN frames and ground truth.

Frame semantics (what a firmware integrating bus signals can rely on):

* Message ``M`` with DBC cycle time ``P`` sends frame ``j`` of a drive segment
  at ``t0 + (j + 1) P`` plus a fixed per-message stagger below 2 ms (so
  messages with equal cycle times do not share a timestamp) plus a jitter of
  up to ``JITTER_S`` (the ECU's transmit task; seeded, so reproducible); the
  first frame comes one period after the car starts. Timestamps are monotonic.
* Every signal is what the ECU read as it built the frame: the value of the
  10 ms physics step ending the period ``(j P, (j + 1) P]``. Rate-like
  signals (``VehicleSpeed``, wheel speeds, ``FuelRate``, ``EngineSpeed``,
  torques, ``PackCurrent`` ...) are therefore samples, not period means:
  integrating them over the frames' timestamps errs (fuel +0.15 to +0.27 %
  on the presets, a sampling error), and the truth stays the physics.
  ``Odometer`` is floored to its 0.1 km resolution like a cluster's.
* ``COUNTER`` is the message's frame number modulo ``2**bits`` (counting on
  across parked gaps); ``CHECKSUM`` per the DBC (see ``frames``).
* Parked gaps of a user cycle (see ``cycles``) put no frames on the bus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import intake, physics
from .cycles import Cycle, load_cycle
from .frames import codecs_for
from .vehicles import Vehicle, load_vehicle

MPG_PER_KMPL = 2.352145833  # US mpg per km/L
JITTER_S = 0.0005  # estimate: an ECU's transmit task runs up to 0.5 ms late


@dataclass
class SimResult:
    """Outcome of one simulation.

    ``truth``: the ground-truth dict (the ``--json`` output).
    ``frames``: dict of numpy arrays sorted by timestamp - ``timestamp``
    (float64 s), ``arbitration_id`` (uint32), ``is_extended`` (bool),
    ``dlc`` (uint8), ``data`` (N x 8 uint8).
    ``trace``: dict of per-10-ms-step arrays for plots (``time_s``,
    ``target_kmh``, ``speed_kmh``, ``engine_rpm`` or ``motor_rpm``,
    ``fuel_lph``, ``pedal_pct``, ``boost_kpa``, ``coolant_c``, ``grade_pct``,
    ``pack_soc_pct`` ...).
    """

    vehicle: Vehicle
    cycle: Cycle
    truth: dict
    frames: dict
    trace: dict
    grid_wh_per_km: float | None = None
    # engine cars: what an engine ECU measures, per 10 ms step (``ecu_state``)
    ecu: dict | None = None

    def messages(self, start=0, stop=None):
        """Yield ``can.Message`` objects in timestamp order."""
        import can
        f = self.frames
        ts, ids, ext, dlc, data = (f["timestamp"].tolist(), f["arbitration_id"].tolist(),
                                   f["is_extended"].tolist(), f["dlc"].tolist(), f["data"])
        stop = len(ts) if stop is None else min(stop, len(ts))
        for i in range(start, stop):
            yield can.Message(timestamp=ts[i], arbitration_id=ids[i], is_extended_id=ext[i],
                              dlc=dlc[i], data=data[i, : dlc[i]].tobytes(), channel=0)

    def __len__(self):
        return len(self.frames["timestamp"])


# ------------------------------------------------------------------ signals

def _ice_signals(veh: Vehicle, tr, cum_dist_km, cum_fuel_l):
    a = tr.arrays
    d = veh.data
    eng = d["engine"]
    amb = d["environment"]["ambient_c"]
    rpm = a["engine_rpm"]
    cool = a["coolant_c"]
    running = a["running"]
    turbo = eng.get("boost_max_kpa", 0) > 0
    boost = a["boost_kpa"]
    load = a["load"]
    fuel = a["fuel_lph"]
    # cosmetic but plausible engine internals
    oil_t = amb + (cool - amb) * 0.95
    oil_p = np.where(running, np.minimum(100 + 0.06 * rpm, 480) * (1 + 0.3 * np.clip((80 - oil_t) / 55, 0, 1)), 0)
    if turbo:
        tc = np.where(running, 25000 * rpm / eng["max_rpm"] + 170000 * np.sqrt(np.clip(boost, 0, None) / max(eng["boost_max_kpa"], 1)), 0)
        wg = np.where(boost > 0.8 * eng["boost_max_kpa"], 60.0, 0.0)
    else:
        tc = np.zeros_like(rpm)
        wg = np.zeros_like(rpm)
    iat = amb + 5 + (np.clip(boost, 0, None) * 0.08 if turbo else 0) + 0.0 * rpm
    ign = np.where(running, 8 + 22 * (1 - np.clip(load, 0, 1)) + rpm / 1000, 0.0)
    tank = eng["tank_l"]
    fuel_level = eng["fuel_level_initial_pct"] - cum_fuel_l / tank * 100
    hybrid = veh.powertrain == "mild_hybrid"
    batt_v = a["pack_voltage"] if hybrid else np.where(running, 14.2, 12.5)
    sig = {
        "EngineSpeed": ("rate", rpm),
        "AccelPedal": ("rate", a["pedal"]),
        "ThrottlePosition": ("rate", a["throttle"]),
        "EngineTorque": ("rate", a["engine_torque"]),
        "FuelCutActive": ("last", a["fuel_cut"]),
        "EngineRunning": ("last", running),
        "ManifoldPressure": ("rate", a["map_kpa"]),
        "FuelRate": ("rate", fuel),
        "InjectorPulseWidth": ("pw", None),
        "BoostPressure": ("rate", boost),
        "CoolantTemp": ("last", cool),
        "IntakeAirTemp": ("last", iat),
        "CheckEngineLamp": ("const", 0),
        "OilPressureLamp": ("const", 0),
        "BatteryVoltage": ("rate", batt_v),
        "OilPressure": ("last", oil_p),
        "OilTemp": ("last", oil_t),
        "TurboSpeed": ("last", tc),
        "WastegateDuty": ("last", wg),
        "KnockRetard": ("const", 0),
        "IgnitionTiming": ("last", ign),
        "AirFuelRatio": ("last", a["afr"]),
        "CvtRatio": ("rate", a["ratio"]),
        "GearSelector": ("const", 3),
        "CvtOilTemp": ("last", amb + (cool - amb) * 0.8),
        "WasherFluidLevel": ("const", 80),
        "FuelLevel": ("last", fuel_level),
    }
    if hybrid:
        sig.update({
            "IsgTorque": ("rate", a["isg_torque"]),
            "IsgMode": ("last", a["isg_mode"]),
            "IsgSpeed": ("rate", a["isg_rpm"]),
            "PackVoltage": ("rate", a["pack_voltage"]),
            "PackCurrent": ("rate", a["pack_current"]),
            "PackSoc": ("last", a["pack_soc"]),
            "PackTemp": ("const", amb + 2),
            "IdleStopActive": ("last", a["idle_stop"]),
            "RegenActive": ("last", a["regen"]),
            "AssistActive": ("last", a["assist"]),
            "IdleStopInhibit": ("last", a["idle_stop_inhibit"]),
        })
    return sig


def _ev_signals(veh: Vehicle, tr, cum_dist_km, cum_fuel_l):
    a = tr.arrays
    amb = veh.data["environment"]["ambient_c"]
    return {
        "MotorTorque": ("rate", a["motor_torque"]),
        "MotorSpeed": ("rate", a["motor_rpm"]),
        "MotorTemp": ("last", a["motor_temp"]),
        "InverterTemp": ("last", a["inverter_temp"]),
        "PackVoltage": ("rate", a["pack_voltage"]),
        "PackCurrent": ("rate", a["pack_current"]),
        "PackSoc": ("last", a["pack_soc"]),
        "PackTemp": ("const", amb + 3),
        "RegenActive": ("last", a["regen"]),
        "ReadyState": ("const", 1),
        "DriveMode": ("const", 0),
        "AuxPower": ("rate", a["aux_w"]),
        "AccelPedal": ("rate", a["pedal"]),
        "ShiftPosition": ("const", 3),
        "TorqueRequest": ("rate", a["torque_request"]),
    }


def _common_signals(veh: Vehicle, tr, cum_dist_km, t_step):
    a = tr.arrays
    kmh = a["v"] * 3.6
    # small, realistic wheel differences: tyre radius tolerance and gentle curves
    curve = 0.004 * np.sin(2 * np.pi * t_step / 37.0)
    return {
        "VehicleSpeed": ("rate", kmh),
        "BrakeSwitch": ("last", a["brake"]),
        "LongitudinalAccel": ("rate", a["accel"]),
        "WheelSpeedFL": ("rate", kmh * (1.0015 - curve)),
        "WheelSpeedFR": ("rate", kmh * (0.9990 + curve)),
        "WheelSpeedRL": ("rate", kmh * (1.0005 - curve)),
        "WheelSpeedRR": ("rate", kmh * (0.9985 + curve)),
        "Odometer": ("odo", veh.p("meter.odometer_km") + cum_dist_km),
        "AmbientTemp": ("const", veh.data["environment"]["ambient_c"]),
    }


# ------------------------------------------------------------------ frames

def _window(x, s, e, m, how):
    """Per frame of a message every m steps: the value of the step that ends
    the frame's period. A rate ("rate") is what the ECU read as it built the
    frame, a state ("last") where it stood; neither is a period mean."""
    nf = (e - s) // m
    block = x[s:s + nf * m].reshape(nf, m)
    return block[:, -1]


def _build_frames(veh: Vehicle, tr, sig: dict, eng_params) -> dict:
    codecs = codecs_for(veh.dbc)
    step_ms = int(round(physics.DT * 1000))
    ts_parts, id_parts, ext_parts, data_parts, dlc_parts = [], [], [], [], []
    for mi, codec in enumerate(codecs):
        if codec.cycle_ms <= 0:
            continue
        m = max(1, codec.cycle_ms // step_ms)
        period = m * physics.DT
        stagger = (mi % 8) * 0.00025
        # an ECU's task sends a little after its period ends, never exactly
        jitter = np.random.default_rng(mi)
        frame_base = 0
        seg_data, seg_ts = [], []
        for s, e, t0 in zip(tr.seg_start, tr.seg_stop, tr.seg_t0):
            nf = (e - s) // m
            if nf == 0:
                continue
            vals = {}
            for sg in codec.signals:
                spec = sig.get(sg.name)
                if spec is None:
                    continue
                how, x = spec
                if how == "const":
                    vals[sg.name] = np.full(nf, float(x))
                elif how == "pw":
                    fuel = _window(sig["FuelRate"][1], s, e, m, "rate")
                    rpm = _window(sig["EngineSpeed"][1], s, e, m, "rate")
                    inj_per_s = eng_params["cylinders"] * rpm / 120.0
                    mg_per_s = fuel / 3600 * eng_params["fuel_density_kg_per_l"] * 1e6
                    pw = np.where((fuel > 0) & (inj_per_s > 0),
                                  mg_per_s / np.maximum(inj_per_s, 1e-9) / eng_params["injector_flow_mg_per_ms"]
                                  + eng_params["injector_dead_time_ms"], 0.0)
                    vals[sg.name] = pw
                elif how == "odo":
                    vals[sg.name] = np.floor(_window(x, s, e, m, "last") * 10 + 1e-9) / 10
                else:
                    vals[sg.name] = _window(np.asarray(x, np.float64), s, e, m, how)
            if codec.mux is not None:
                vals[codec.mux.name] = np.arange(frame_base, frame_base + nf) % 3
            idx = np.arange(frame_base, frame_base + nf)
            seg_data.append(codec.encode(vals, idx))
            seg_ts.append(t0 + (np.arange(nf) + 1) * period + stagger + jitter.uniform(0.0, JITTER_S, nf))
            frame_base += nf
        if not seg_ts:
            continue
        ts = np.concatenate(seg_ts)
        ts_parts.append(ts)
        id_parts.append(np.full(len(ts), codec.frame_id, np.uint32))
        ext_parts.append(np.full(len(ts), codec.is_extended, bool))
        dlc_parts.append(np.full(len(ts), codec.length, np.uint8))
        data_parts.append(np.concatenate(seg_data))
    ts = np.concatenate(ts_parts)
    order = np.argsort(ts, kind="stable")
    data = np.concatenate(data_parts)[order]
    if data.shape[1] < 8:
        data = np.pad(data, ((0, 0), (0, 8 - data.shape[1])))
    ids = np.concatenate(id_parts)[order]
    return {
        "timestamp": ts[order],
        "arbitration_id": ids,
        "is_extended": np.concatenate(ext_parts)[order],
        "dlc": np.concatenate(dlc_parts)[order],
        "data": np.ascontiguousarray(data),
    }


# ------------------------------------------------------------------ truth

def _r(x, nd=6):
    return None if x is None else float(round(x, nd))


def _truth(veh, cyc, tr, n_frames):
    a = tr.arrays
    dt = physics.DT
    dist = a["v"] * dt / 1000.0
    fuel = a["fuel_lph"] * dt / 3600.0
    energy = a["pack_power_w"] * dt / 3.6e6 if "pack_power_w" in a else np.zeros_like(dist)
    t = a["t"]
    ends = np.array([p[2] for p in cyc.phases])
    ph = np.minimum(np.searchsorted(ends, t - 1e-9), len(ends) - 1)
    phases = []
    for i, (name, _t0, _t1) in enumerate(cyc.phases):
        sel = ph == i
        d, f, e = float(dist[sel].sum()), float(fuel[sel].sum()), float(energy[sel].sum())
        phases.append({"name": name, "distance_km": _r(d), "fuel_l": _r(f),
                       "km_per_l": _r(d / f, 4) if f > 0 else None, "energy_kwh": _r(e)})
    d, f, e = float(dist.sum()), float(fuel.sum()), float(energy.sum())
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
        "trace_shortfall_s": _r(float(a["shortfall"].sum()) * dt, 2),
        "frames": int(n_frames),
    }


def _plot_trace(veh, tr) -> dict:
    a = tr.arrays
    out = {
        "time_s": a["t"], "target_kmh": a["vt"] * 3.6, "speed_kmh": a["v1"] * 3.6,
        "accel_mps2": a["accel"], "grade_pct": a["grade"] * 100, "fuel_lph": a["fuel_lph"],
        "pedal_pct": a["pedal"], "brake": a["brake"], "wheel_power_kw": a["p_wheel"] / 1000,
    }
    if veh.powertrain == "ev":
        out.update(motor_rpm=a["motor_rpm"], motor_torque_nm=a["motor_torque"],
                   pack_power_kw=a["pack_power_w"] / 1000, pack_soc_pct=a["pack_soc"], regen=a["regen"])
    else:
        out.update(engine_rpm=a["engine_rpm"], engine_torque_nm=a["engine_torque"], boost_kpa=a["boost_kpa"],
                   map_kpa=a["map_kpa"], coolant_c=a["coolant_c"], cvt_ratio=a["ratio"], fuel_cut=a["fuel_cut"])
        if veh.powertrain == "mild_hybrid":
            out.update(isg_torque_nm=a["isg_torque"], isg_mode=a["isg_mode"], pack_soc_pct=a["pack_soc"],
                       pack_power_kw=a["pack_power_w"] / 1000, idle_stop=a["idle_stop"])
    return out


def simulate(vehicle, cycle, frames: bool = True) -> SimResult:
    """Simulate ``vehicle`` (name, path or ``Vehicle``) over ``cycle`` (name,
    path or ``Cycle``). ``frames=False`` skips CAN encoding (physics only)."""
    veh = load_vehicle(vehicle)
    cyc = load_cycle(cycle)
    tr = physics.run(veh, cyc)
    a = tr.arrays
    cum_dist = np.cumsum(a["v"]) * physics.DT / 1000.0
    cum_fuel = np.cumsum(a["fuel_lph"]) * physics.DT / 3600.0
    if veh.powertrain == "ev":
        sig = _ev_signals(veh, tr, cum_dist, cum_fuel)
        eng_params = None
    else:
        sig = _ice_signals(veh, tr, cum_dist, cum_fuel)
        eng_params = veh.data["engine"]
    sig.update(_common_signals(veh, tr, cum_dist, a["t"]))
    if frames:
        fr = _build_frames(veh, tr, sig, eng_params)
    else:
        fr = {"timestamp": np.zeros(0), "arbitration_id": np.zeros(0, np.uint32),
              "is_extended": np.zeros(0, bool), "dlc": np.zeros(0, np.uint8), "data": np.zeros((0, 8), np.uint8)}
    truth = _truth(veh, cyc, tr, len(fr["timestamp"]))
    grid = None
    if veh.powertrain == "ev" and truth["distance_km"]:
        # energy the charger must put back: the chemical energy taken out of the
        # pack (terminal energy plus its internal I^2R loss) over the charger's
        # grid-to-pack efficiency - the Japanese figure is AC from the grid
        chem_wh = float(a["pack_chem_w"].sum()) * physics.DT / 3600.0
        grid = chem_wh / truth["distance_km"] / veh.p("battery.charger_efficiency")
    ecu = ecu_state(veh, tr, cum_dist, cum_fuel) if veh.powertrain != "ev" else None
    return SimResult(veh, cyc, truth, fr, _plot_trace(veh, tr), grid, ecu)


def ecu_state(veh: Vehicle, tr, cum_dist_km, cum_fuel_l) -> dict:
    """Per 10 ms step, what the engine ECU knows (the OBD-II ECU's source,
    keidrive.sim.obd_ecu): the step's end time, state at the step and the
    intake (keidrive.sim.intake)."""
    a = tr.arrays
    eng = veh.data["engine"]
    state = intake.run(veh, tr)
    state.update(
        t_end=a["t"], segment_start=np.asarray(tr.seg_t0), segment_end=a["t"][np.asarray(tr.seg_stop) - 1],
        speed_kmh=a["v"] * 3.6, rpm=a["engine_rpm"], running=a["running"], coolant_c=a["coolant_c"],
        fuel_lph=a["fuel_lph"], load_pct=np.clip(a["load"], 0, 1) * 100, throttle_pct=a["throttle"],
        fuel_level_pct=eng["fuel_level_initial_pct"] - cum_fuel_l / eng["tank_l"] * 100,
        odometer_km=veh.p("meter.odometer_km") + cum_dist_km,
        ambient_c=np.full(len(a["t"]), float(veh.data["environment"]["ambient_c"])),
    )
    return state
