"""A second ECU on the OBD-II port that claims every PID in its supported-PID
maps (sim.obd_ecu.HostileEcu) and then never answers them, answers each
request only with "response pending", or answers garbage: the firmware
(MicroPython unix port, in lockstep with the simulated engine ECU) keeps its
distance and fuel within 1 % and names the ECU. Before, each of the three
zeroed the trip (or, garbage, doubled it) while the status said valid."""

import pytest
from keidrive import sim
from keidrive.drive.obdloop import drive_obd
from keidrive.sim.obd_ecu import HOSTILE


@pytest.fixture(scope="module")
def turbo():
    # the N-BOX's engine ECU offers MAF, not 0x5E: a stranger claiming 0x5E
    # is the only one to offer the first fuel method
    return sim.simulate("nbox-turbo", "hwfet", frames=False)


@pytest.fixture(scope="module")
def alone(turbo):
    report, _ = drive_obd(turbo)
    assert report.ok, report.failure()
    return report.trip


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_second_ecu_leaves_the_trip_and_names_the_ecu(turbo, alone, kind):
    report, _ = drive_obd(turbo, second_ecu=kind)
    assert report.ok, report.failure()
    trip, truth = report.trip, turbo.truth
    assert abs(trip["distance_km"] / truth["distance_km"] - 1) < 0.01
    assert abs(trip["fuel_l"] / alone["fuel_l"] - 1) < 0.01  # the MAF method's own figure, as without the stranger
    assert trip["fuel_method"] == alone["fuel_method"] == "obd_maf"
    obd = trip["obd"]
    assert obd["engine_ecu"] == "0x7E8"
    assert obd["fuel_fallbacks"] == [{"method": "obd_fuel_rate", "pid": "0x5E", "ecu": "0x7E9"}]
    stranger = {e["id"]: e for e in obd["ecus"]}["0x7E9"]
    if kind == "pending":
        assert stranger["ignored"] == "pending" and stranger["pending"] > 0
    elif kind == "silent":
        assert stranger["ignored"] == "silent" and stranger["missed"] >= 3
    assert all(s["missing"] == [] and s["valid"] for s in report.statuses if 5 < s["t_s"] < 760)


def test_idle_time_and_idle_fuel_come_together(alone):
    # the engine runs by its fuel flow at speed 0: before, idle fuel was
    # counted with 0 s of idle
    assert alone["idle_fuel_l"] > 0 and alone["idle_s"] > 1


def test_the_eco_score_is_null_without_its_inputs(alone):
    # no pedal or engine data over OBD-II: before, 100
    assert alone["eco_score"] is None and "eco_score" in alone["quality"]["not_measured"]
