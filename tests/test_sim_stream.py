"""The simulator a piece at a time: the pieces put together are the whole
drive bit for bit (physics, frames, truth), whatever the piece size, and a
streamed drive holds no piece it has handed on."""

import gc
import weakref

import numpy as np
import pytest
from keidrive import sim
from keidrive.sim import core, physics

VEHICLES = ("alto-hybrid", "nbox-turbo", "sakura-ev")


@pytest.fixture(scope="module")
def hilly_day(tmp_path_factory):
    """Irregular samples, a climb steep enough to fall behind the trace, a
    two-hour parked gap, and drives that end between whole pieces."""
    rows = ["time_s,speed_kmh,grade_pct"]
    t = 0.0
    for k in range(60):
        rows.append(f"{t:.2f},{min(80, k * 4):.1f},{18 if 15 < k < 40 else 0}")
        t += 1.3
    rows.append(f"{t:.2f},0,0")
    t += 7200
    for k in range(45):
        rows.append(f"{t:.2f},{(k % 12) * 6:.1f},-2")
        t += 2.0
    rows.append(f"{t:.2f},0,0")
    path = tmp_path_factory.mktemp("cycles") / "hilly_day.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _pieced(vehicle, cycle, steps):
    drive = core._Drive(sim.load_vehicle(vehicle), sim.load_cycle(cycle), True, steps)
    traces, frames = [], []
    for tr, _, _, piece in drive:
        traces.append(tr)
        frames.append(piece)
    return physics.concatenate(traces), core.join_frames(frames), drive.truth()


@pytest.mark.parametrize("vehicle", VEHICLES)
def test_pieces_of_any_size_are_the_whole_drive_bit_for_bit(vehicle, hilly_day):
    whole = sim.simulate(vehicle, hilly_day)
    assert whole.truth["trace_shortfall_s"] > 0 and len(whole.cycle.segments()) == 2  # the cases pieces must carry
    whole_trace = physics.run(whole.vehicle, whole.cycle)
    for steps in (100, 700):
        trace, frames, truth = _pieced(vehicle, hilly_day, steps)
        assert trace.seg_start == whole_trace.seg_start and trace.seg_stop == whole_trace.seg_stop
        for key, x in whole_trace.arrays.items():
            assert np.array_equal(trace.arrays[key], x), (steps, key)
        for key, x in whole.frames.items():
            assert np.array_equal(frames[key], x), (steps, key)
        assert truth == whole.truth


def test_a_streamed_drive_is_simulate_piece_by_piece():
    whole = sim.simulate("nbox-turbo", "udds")
    drive = sim.Simulation("nbox-turbo", "udds")
    pieces = list(drive)
    assert len(pieces) == -(-len(whole.trace["time_s"]) // physics.CHUNK_STEPS)
    for key, x in whole.frames.items():
        assert np.array_equal(np.concatenate([piece[key] for piece in pieces]), x)
    assert drive.truth == whole.truth
    # the plot trace: evenly thinned, every point one of the whole trace's
    stride = -(-len(whole.trace["time_s"]) // core.TRACE_POINTS)
    stride = 1 << (stride - 1).bit_length()
    for key, x in whole.trace.items():
        assert np.array_equal(drive.trace[key], x[::stride]), key


def test_a_thinned_trace_stays_within_its_limit_and_evenly_spaced():
    thin = core._ThinTrace(100)
    steps = 0
    for size in (37, 250, 1, 999, 64):
        thin.add({"time_s": np.arange(steps, steps + size, dtype=float)})
        steps += size
        kept = thin.arrays()["time_s"]
        assert len(kept) <= 100
        assert np.array_equal(kept, np.arange(0, steps, thin.stride, dtype=float))


def test_a_streamed_drive_holds_no_piece_it_has_handed_on(tmp_path):
    """What a long drive holds does not grow with it: every piece's arrays
    are gone once the next piece is handed on."""
    rows = ["time_s,speed_kmh"] + [f"{t},{40 + 30 * np.sin(t / 50):.2f}" for t in range(1800)]
    (tmp_path / "long.csv").write_text("\n".join(rows) + "\n")
    drive = sim.Simulation("alto-na", tmp_path / "long.csv", steps=10_000)
    messages = len(core.codecs_for(drive.vehicle.dbc))
    alive = []
    most = 0
    for piece in drive:
        assert len(piece["timestamp"]) <= 10_000 * messages  # at most a frame per message and step
        alive.append(weakref.ref(piece["data"].base if piece["data"].base is not None else piece["data"]))
        del piece
        gc.collect()
        most = max(most, sum(ref() is not None for ref in alive))
    assert len(alive) == 18 and most == 1
    assert drive.truth["frames"] > 0 and len(drive.trace["time_s"]) <= core.TRACE_POINTS
