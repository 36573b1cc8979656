"""keidrive.sim - kei powertrain simulator: drive cycles in, CAN traffic and ground truth out.

Library API (used by the firmware tests and the firmware-in-the-loop harness)::

    from keidrive import sim
    res = sim.simulate("alto-na", "wltc-jp")   # names, paths, or loaded objects
    res.truth            # dict: vehicle, cycle, duration_s, distance_km, fuel_l, km_per_l,
                         # l_per_100km, mpg_us, energy_kwh, phases[...], trace_shortfall_s, frames
    res.frames           # numpy arrays sorted by time: timestamp (float64 s), arbitration_id
                         # (uint32), is_extended (bool), dlc (uint8), data (N x 8 uint8)
    res.messages()       # yields can.Message in timestamp order
    res.trace            # per-10-ms arrays for plots: time_s, target_kmh, speed_kmh, fuel_lph, ...
    res.grid_wh_per_km   # EV only: pack energy / distance / charger efficiency (AC from the grid)

    drive = sim.Simulation("alto-na", "day.csv")   # a drive of any length in bounded memory
    for frames in drive: ...   # frame arrays as res.frames, a piece (2 minutes of driving) at a time
    for trace, frames in drive.pieces(): ...   # the same, with the piece's plot trace every 10 ms step
    drive.truth, drive.trace   # once iterated: the truth, a plot trace thinned to at most 20,000 points

    sim.load_vehicle("nbox-turbo") / sim.load_vehicle("my_car.toml") -> Vehicle
    sim.load_cycle("wltc-jp") / sim.load_cycle("day.csv") -> Cycle
    sim.list_vehicles(), sim.list_cycles()
    sim.write_log(res, "out.blf")    # any python-can writer, by suffix
    sim.stream(res, "socketcan:vcan0", speed=1.0)   # None: as fast as possible

Truth is the physics: distance is the integral of the achieved speed and
fuel the integral of the fuel rate, at the simulator's 10 ms step. The
frames carry what ECUs send - rate signals sampled when a frame is built,
timestamps with the transmit task's jitter (see ``keidrive.sim.core``) - so
a firmware integrating them errs by what sampling costs, as on a car.
``energy_kwh`` is the net energy out of the traction pack (EV) or the 12 V
lithium-ion pack (mild hybrid), positive when discharged; 0 for a
conventional car.

Modules: ``cycles`` (cycle data), ``vehicles`` (TOML presets), ``physics``
(10 ms model), ``frames`` (vectorised DBC encoder), ``core`` (simulate,
frame semantics), ``io`` (log writers, bus streaming).
"""

from .core import SimResult, Simulation, simulate
from .cycles import Cycle, list_cycles, load_cycle
from .io import LOG_SUFFIXES, stream, write_log
from .vehicles import Vehicle, list_vehicles, load_vehicle

__all__ = [
    "Cycle", "SimResult", "Simulation", "Vehicle", "LOG_SUFFIXES", "list_cycles", "list_vehicles",
    "load_cycle", "load_vehicle", "simulate", "stream", "write_log",
]
