"""CONTROL_ACK: the firmware says how many records it has processed, so a
harness waits for that, never for the firmware to look idle."""

import pytest
from conftest import micropython_or_skip
from keidrive import sim
from keidrive.drive.harness import firmware_config, run_records
from keidrive.io import record


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_an_ack_counts_every_record_before_it_wherever_it_falls(runtime):
    if runtime == "micropython":
        micropython_or_skip()
    frames = record.from_frames(sim.simulate("nbox-turbo", "hwfet").frames)[:5000].tobytes()
    ack = record.control(record.CONTROL_ACK)
    # an ack at the start, inside a block, after a block boundary and at the end
    stream = ack + frames[: 1000 * record.SIZE] + ack + frames[1000 * record.SIZE:] + ack
    report = run_records(stream, firmware_config("nbox-turbo"), runtime=runtime, timeout=300)
    assert report.ok, report.failure()
    assert [e["records"] for e in report.of_type("ack")] == [0, 1001, 5002]
    # the acks are no frames: the trip is the same as without them
    plain = run_records(frames, firmware_config("nbox-turbo"), runtime=runtime, timeout=300)
    assert report.trip["distance_km"] == plain.trip["distance_km"]
    assert report.trip["fuel_l"] == plain.trip["fuel_l"]
