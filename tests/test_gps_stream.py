"""GPS in streamed drives: the GNSS module's sentences made a piece of the
trace at a time are the ones it makes over the whole trace; a route drive
fed as it is simulated carries the whole drive's records, UART records
among the frames, bit for bit; and a replay's capture goes among the log's
frames as they are read back exactly as it went among the whole log's."""

import can
import numpy as np
import pytest
from conftest import SHORT_CYCLE
from keidrive import sim
from keidrive.gps.drive import prepare, with_gnss
from keidrive.gps.nmea import Receiver, merge, uart_records
from keidrive.gps.replay import place, with_nmea
from keidrive.io import drivelog, record
from keidrive.sim import physics

RECEIVERS = {
    "1hz": Receiver(),
    "10hz-tunnel-multipath": Receiver(rate_hz=10, noise_m=10, outages=[(100, 150)],
                                      jumps=[(300, 2, 800), (400, 2.5, 800, 45)]),
    "no-noise": Receiver(noise_m=0),
}


@pytest.fixture(scope="module")
def tn_al():
    """hwfet repeated along tn-al (2,297 s), simulated whole."""
    route, cycle = prepare("tn-al", sim.load_cycle("hwfet"))
    return route, cycle, sim.simulate("nbox-turbo", cycle)


def test_a_drives_first_and_last_step_are_known_before_it_is_simulated(tn_al, tmp_path):
    _, cycle, whole = tn_al
    assert physics.step_span(cycle) == (whole.trace["time_s"][0], whole.trace["time_s"][-1])
    gap = tmp_path / "gap.csv"  # starting late, a parked gap, ending between whole pieces
    gap.write_text("time_s,speed_kmh\n3.5,0\n20,40\n40,0\n4000,0\n4030,30\n4061.3,0\n")
    parked = sim.simulate("alto-na", gap)
    assert physics.step_span(sim.load_cycle(gap)) == (parked.trace["time_s"][0], parked.trace["time_s"][-1])


@pytest.mark.parametrize("name", RECEIVERS)
def test_the_module_a_piece_at_a_time_sends_what_it_sends_over_the_whole_trace(tn_al, name):
    receiver = RECEIVERS[name]
    route, _, whole = tn_al
    t, v = whole.trace["time_s"], whole.trace["speed_kmh"]
    expected = receiver.sentences(route, t, v)
    for size in (777, physics.CHUNK_STEPS):
        module = receiver.stream(route, t[0], t[-1])
        got = []
        for start in range(0, len(t), size):
            got += module.add(t[start:start + size], v[start:start + size])
        assert got == expected, size


def test_a_streamed_route_drive_feeds_the_whole_drives_records(tn_al):
    route, cycle, whole = tn_al
    receiver = RECEIVERS["10hz-tunnel-multipath"]
    sentences = receiver.sentences(route, whole.trace["time_s"], whole.trace["speed_kmh"])
    expected = merge(record.from_frames(whole.frames), uart_records(sentences))
    drive = sim.Simulation("nbox-turbo", cycle, steps=1000)  # many pieces: sentences due across their ends
    pieces = ((trace, record.from_frames(frames)) for trace, frames in drive.pieces())
    streamed = list(with_gnss(pieces, route, receiver, physics.step_span(cycle)))
    assert np.concatenate(streamed).tobytes() == expected.tobytes()
    assert max(len(piece) for piece in streamed) < len(expected) / 100  # handed on a piece at a time


def test_a_capture_goes_among_a_logs_frames_as_they_are_read_back(tn_al, tmp_path, monkeypatch):
    route, _, _ = tn_al
    (tmp_path / "short.csv").write_text(SHORT_CYCLE)
    drive = sim.simulate("alto-na", tmp_path / "short.csv")
    log = tmp_path / "short.log"
    sim.write_log(drive, log)
    capture = tmp_path / "short.nmea"
    capture.write_bytes(b"".join(line for _, line in RECEIVERS["10hz-tunnel-multipath"].sentences(
        route, drive.trace["time_s"], drive.trace["speed_kmh"])))
    monkeypatch.setattr(drivelog, "SPOOL_RECORDS", 500)  # a piece ends every 500 frames
    frames = drivelog.read_drive_log(log).messages
    timed = place(capture, frames.first_s, frames.last_s)
    expected = merge(record.from_messages(list(can.LogReader(str(log)))), uart_records(timed))
    streamed = list(with_nmea(frames.records(), timed))
    assert len(streamed) > 10 and np.concatenate(streamed).tobytes() == expected.tobytes()
