"""A two-minute drive: short enough for a device under test that runs near
real time (the emulated Pico, a board at recorded pace), long enough for
the totals against the simulator's truth and an interstate overspeed
raised and cleared."""

import numpy as np
import pytest

# Up to 120 km/h (over the 70 mph = 112.7 km/h interstate limit) for half
# a minute, then back to a stop.
CYCLE = "time_s,speed_kmh\n0,0\n5,0\n25,70\n45,120\n75,120\n95,60\n115,0\n120,0\n"
TOLERANCE = 0.005  # as hil/test_drives.py: the sampled bus signals against the physics


@pytest.mark.timeout(1800)  # the emulated Pico: about real time on an idle core, slower when loaded
def test_a_two_minute_drive_within_half_a_percent_and_an_overspeed_raised_and_cleared(drive, tmp_path_factory):
    cycle = tmp_path_factory.mktemp("cycle") / "two_minutes.csv"
    cycle.write_text(CYCLE)
    run = drive("nbox-turbo", str(cycle), "us-interstate")
    truth, trip = run.truth, run.trip
    assert abs(trip["distance_km"] - truth["distance_km"]) < TOLERANCE * truth["distance_km"]
    assert abs(trip["fuel_l"] - truth["fuel_l"]) < TOLERANCE * truth["fuel_l"]
    overspeeds = [w for w in run.warnings if w["kind"] == "overspeed"]
    assert len(overspeeds) == 1
    warning = overspeeds[0]
    time_s, speed = np.asarray(run.trace["time_s"]), np.asarray(run.trace["speed_kmh"])
    over = time_s[speed > 70 * 1.609344 + 1]  # as hil/test_drives.py's oracle: 1 km/h over the limit
    assert abs(warning["start_s"] - (over[0] + 3.0)) <= 0.2  # the dwell, plus the tick and the frame period
    assert warning["end_s"] is not None and warning["end_s"] >= over[-1]
