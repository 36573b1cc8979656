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

from . import physics
from .cycles import Cycle, load_cycle
from .frames import codecs_for
from .truth import TruthSums
from .vehicles import Vehicle, load_vehicle

JITTER_S = 0.0005  # estimate: an ECU's transmit task runs up to 0.5 ms late
TRACE_POINTS = 20_000  # a streamed drive's plot trace, at most


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

class _Frames:
    """Every message's frames, a piece of the trace at a time: a message's
    frame count (its COUNTER and multiplexer) and its transmit task's jitter
    generator go on from one piece to the next, so the pieces' frames put
    together are the whole drive's."""

    def __init__(self, veh: Vehicle, eng_params):
        self.eng_params = eng_params
        self.step_ms = int(round(physics.DT * 1000))
        # (index in the DBC, codec): the index seeds the jitter and sets the stagger
        self.codecs = [(mi, codec) for mi, codec in enumerate(codecs_for(veh.dbc)) if codec.cycle_ms > 0]
        self.sent = {mi: 0 for mi, _ in self.codecs}
        self.jitter = {mi: np.random.default_rng(mi) for mi, _ in self.codecs}

    def piece(self, tr, sig: dict) -> dict:
        """The frames whose period ends in the piece ``tr``, in timestamp order."""
        eng_params = self.eng_params
        ts_parts, id_parts, ext_parts, data_parts, dlc_parts = [], [], [], [], []
        for mi, codec in self.codecs:
            m = max(1, codec.cycle_ms // self.step_ms)
            period = m * physics.DT
            stagger = (mi % 8) * 0.00025
            # an ECU's task sends a little after its period ends, never exactly
            jitter = self.jitter[mi]
            frame_base = self.sent[mi]
            seg_data, seg_ts = [], []
            for s, e, t0, k0 in zip(tr.seg_start, tr.seg_stop, tr.seg_t0, tr.seg_offset):
                # frame j of the segment ends its period with step (j + 1) m - 1
                first = k0 // m
                nf = (k0 + e - s) // m - first
                if nf == 0:
                    continue
                at = s + (first + 1) * m - 1 - k0  # the step ending the piece's first frame
                vals = {}
                for sg in codec.signals:
                    spec = sig.get(sg.name)
                    if spec is None:
                        continue
                    how, x = spec
                    if how == "const":
                        vals[sg.name] = np.full(nf, float(x))
                    elif how == "pw":
                        fuel = _window(sig["FuelRate"][1], at, nf, m)
                        rpm = _window(sig["EngineSpeed"][1], at, nf, m)
                        inj_per_s = eng_params["cylinders"] * rpm / 120.0
                        mg_per_s = fuel / 3600 * eng_params["fuel_density_kg_per_l"] * 1e6
                        pw = np.where((fuel > 0) & (inj_per_s > 0),
                                      mg_per_s / np.maximum(inj_per_s, 1e-9) / eng_params["injector_flow_mg_per_ms"]
                                      + eng_params["injector_dead_time_ms"], 0.0)
                        vals[sg.name] = pw
                    elif how == "odo":
                        vals[sg.name] = np.floor(_window(x, at, nf, m) * 10 + 1e-9) / 10
                    else:
                        # a rate is what the ECU read as it built the frame,
                        # a state where it stood: neither is a period mean
                        vals[sg.name] = _window(np.asarray(x, np.float64), at, nf, m)
                if codec.mux is not None:
                    vals[codec.mux.name] = np.arange(frame_base, frame_base + nf) % 3
                idx = np.arange(frame_base, frame_base + nf)
                seg_data.append(codec.encode(vals, idx))
                seg_ts.append(t0 + (np.arange(first, first + nf) + 1) * period + stagger
                              + jitter.uniform(0.0, JITTER_S, nf))
                frame_base += nf
            self.sent[mi] = frame_base
            if not seg_ts:
                continue
            ts = np.concatenate(seg_ts)
            data = np.concatenate(seg_data)
            ts_parts.append(ts)
            id_parts.append(np.full(len(ts), codec.frame_id, np.uint32))
            ext_parts.append(np.full(len(ts), codec.is_extended, bool))
            dlc_parts.append(np.full(len(ts), codec.length, np.uint8))
            data_parts.append(np.pad(data, ((0, 0), (0, 8 - data.shape[1]))) if data.shape[1] < 8 else data)
        if not ts_parts:
            return no_frames()
        # Frames of one piece all come before the next piece's: a frame leaves
        # within 2.25 ms of its step's end, the next piece's first a step later.
        ts = np.concatenate(ts_parts)
        order = np.argsort(ts, kind="stable")
        return {
            "timestamp": ts[order],
            "arbitration_id": np.concatenate(id_parts)[order],
            "is_extended": np.concatenate(ext_parts)[order],
            "dlc": np.concatenate(dlc_parts)[order],
            "data": np.ascontiguousarray(np.concatenate(data_parts)[order]),
        }


def _window(x, at: int, nf: int, m: int):
    """The ``nf`` frames' values of a per-step array: every ``m``-th step from ``at``."""
    return x[at:at + nf * m:m]


def no_frames() -> dict:
    return {"timestamp": np.zeros(0), "arbitration_id": np.zeros(0, np.uint32), "is_extended": np.zeros(0, bool),
            "dlc": np.zeros(0, np.uint8), "data": np.zeros((0, 8), np.uint8)}


def join_frames(pieces: list) -> dict:
    """Frame arrays of consecutive pieces as one."""
    if not pieces:
        return no_frames()
    return {key: np.concatenate([piece[key] for piece in pieces]) for key in pieces[0]}


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


class _Drive:
    """The drive a piece of the trace at a time (``physics.chunks``): each
    piece's physics, the distance and fuel so far at each of its steps, its
    frames; the truth summed as the pieces go."""

    def __init__(self, veh: Vehicle, cyc: Cycle, frames: bool = True, steps: int = physics.CHUNK_STEPS):
        self.veh, self.cyc, self.steps = veh, cyc, steps
        self.sums = TruthSums(cyc)
        self.frames = 0
        self._schedule = _Frames(veh, None if veh.powertrain == "ev" else veh.data["engine"]) if frames else None
        self._v_sum = self._fuel_sum = 0.0  # the running sums the cumulative figures come from

    def __iter__(self):
        """(trace piece, distance km and fuel L so far at each of its steps, its frames)"""
        veh = self.veh
        for tr in physics.chunks(veh, self.cyc, self.steps):
            a = tr.arrays
            # the running sums as one cumulative sum over the drive would add them
            v_sum = np.cumsum(np.concatenate(([self._v_sum], a["v"])))[1:]
            fuel_sum = np.cumsum(np.concatenate(([self._fuel_sum], a["fuel_lph"])))[1:]
            self._v_sum, self._fuel_sum = float(v_sum[-1]), float(fuel_sum[-1])
            cum_dist = v_sum * physics.DT / 1000.0
            cum_fuel = fuel_sum * physics.DT / 3600.0
            self.sums.add(a)
            frames = no_frames()
            if self._schedule is not None:
                signals = _ev_signals if veh.powertrain == "ev" else _ice_signals
                sig = signals(veh, tr, cum_dist, cum_fuel)
                sig.update(_common_signals(veh, tr, cum_dist, a["t"]))
                frames = self._schedule.piece(tr, sig)
            self.frames += len(frames["timestamp"])
            yield tr, cum_dist, cum_fuel, frames

    def truth(self) -> dict:
        return self.sums.truth(self.veh, self.frames)


def simulate(vehicle, cycle, frames: bool = True) -> SimResult:
    """Simulate ``vehicle`` (name, path or ``Vehicle``) over ``cycle`` (name,
    path or ``Cycle``). ``frames=False`` skips CAN encoding (physics only).
    The whole drive is held (``Simulation`` streams one of any length)."""
    veh = load_vehicle(vehicle)
    cyc = load_cycle(cycle)
    drive = _Drive(veh, cyc, frames)
    traces, dists, fuels, pieces = [], [], [], []
    for tr, cum_dist, cum_fuel, piece in drive:
        traces.append(tr)
        dists.append(cum_dist)
        fuels.append(cum_fuel)
        pieces.append(piece)
    tr = physics.concatenate(traces)
    truth = drive.truth()
    ecu = ecu_state(veh, tr, np.concatenate(dists), np.concatenate(fuels)) if veh.powertrain != "ev" else None
    return SimResult(veh, cyc, truth, join_frames(pieces), _plot_trace(veh, tr),
                     drive.sums.grid_wh_per_km(veh, truth), ecu)


class Simulation:
    """``simulate`` as it goes, for a drive of any length: iterating yields
    its frames a piece at a time (dicts of frame arrays as in
    ``SimResult.frames``, each piece's after the last one's) and sums the
    ground truth. Once iterated, ``truth``, ``grid_wh_per_km`` and ``trace``
    are there as in ``SimResult``; the trace is the plot's, thinned evenly to
    at most ``TRACE_POINTS`` points. What it holds does not grow with the
    drive: a piece of the physics and of the frames, the sums, the thinned
    trace."""

    def __init__(self, vehicle, cycle, steps: int = physics.CHUNK_STEPS):
        self.vehicle = load_vehicle(vehicle)
        self.cycle = load_cycle(cycle)
        self.steps = steps
        self.truth: dict | None = None
        self.grid_wh_per_km: float | None = None
        self.trace: dict | None = None

    def __iter__(self):
        for _, frames in self.pieces():
            yield frames

    def pieces(self):
        """As iterating, with each piece's plot trace every 10 ms step:
        (trace piece, frames) a piece at a time."""
        drive = _Drive(self.vehicle, self.cycle, True, self.steps)
        trace = _ThinTrace(TRACE_POINTS)
        for tr, _, _, frames in drive:
            piece = _plot_trace(self.vehicle, tr)
            trace.add(piece)
            yield piece, frames
        self.truth = drive.truth()
        self.grid_wh_per_km = drive.sums.grid_wh_per_km(self.vehicle, self.truth)
        self.trace = trace.arrays()


class _ThinTrace:
    """A growing trace kept to at most ``limit`` points: every ``stride``-th
    step, the stride doubling (every other point dropped) whenever the limit
    is passed, so the points stay evenly spaced over the whole drive."""

    def __init__(self, limit: int):
        self.limit = limit
        self.stride = 1
        self.steps = 0
        self.points = 0
        self.parts: list = []

    def add(self, piece: dict) -> None:
        first = -self.steps % self.stride  # the piece's first step on the stride
        kept = {key: np.array(x[first::self.stride]) for key, x in piece.items()}
        self.parts.append(kept)
        self.points += len(kept["time_s"])
        self.steps += len(piece["time_s"])
        while self.points > self.limit:
            self.parts = [{key: x[::2].copy() for key, x in self.arrays().items()}]
            self.stride *= 2
            self.points = len(self.parts[0]["time_s"])

    def arrays(self) -> dict:
        if not self.parts:
            return {}
        return {key: np.concatenate([part[key] for part in self.parts]) for key in self.parts[0]}


def ecu_state(veh: Vehicle, tr, cum_dist_km, cum_fuel_l) -> dict:
    """Per 10 ms step, what the engine ECU knows (the OBD-II ECU's source,
    keidrive.sim.obd_ecu): the step's end time, state at the step and the
    intake (keidrive.sim.intake)."""
    from . import intake  # only OBD-II drives need it

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
