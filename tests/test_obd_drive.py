"""The firmware (MicroPython unix port) polling the simulated engine ECU for a
whole drive, in lockstep (keidrive.drive.obdloop): fuel method, figures, VIN, and
an ECU that is silent, stops mid-drive or answers garbage."""

import pytest
from keidrive import sim
from keidrive.drive.obdloop import drive_obd


@pytest.fixture(scope="module")
def hybrid_hwfet():
    return sim.simulate("alto-hybrid", "hwfet", frames=False)


@pytest.fixture(scope="module")
def hybrid_run(hybrid_hwfet):
    report, _ = drive_obd(hybrid_hwfet)
    assert report.ok, report.failure()
    return report


def test_fuel_rate_ecu_gives_fuel_and_distance(hybrid_hwfet, hybrid_run):
    trip, truth = hybrid_run.trip, hybrid_hwfet.truth
    assert trip["fuel_method"] == "obd_fuel_rate"
    assert abs(trip["fuel_l"] / truth["fuel_l"] - 1) < 0.01
    assert abs(trip["distance_km"] / truth["distance_km"] - 1) < 0.01
    o = trip["obd"]
    assert set(o) == {"vin", "supported_pids", "requests", "responses", "timeouts", "negative", "engine_ecu", "ecus",
                      "fuel_fallbacks"}
    assert o["engine_ecu"] == "0x7E8" and [e["id"] for e in o["ecus"]] == ["0x7E8"] and o["fuel_fallbacks"] == []
    assert o["vin"] == "JS2HA97S5M0234567" and 0x5E in o["supported_pids"] and 0x10 not in o["supported_pids"]
    # 10 Hz fast requests plus the slow ones; the only timeouts come after
    # the engine is off at the end
    assert o["requests"] >= 10 * truth["duration_s"] and o["timeouts"] <= 10
    assert o["negative"] == 0


def test_status_lines_say_nothing_is_missing_while_the_ecu_answers(hybrid_run):
    middle = [s for s in hybrid_run.statuses if 10 < s["t_s"] < 700]
    assert middle and all(s["missing"] == [] for s in middle)


def test_each_preset_gets_the_method_its_engine_allows():
    res = sim.simulate("nbox-turbo", "hwfet", frames=False)
    report, _ = drive_obd(res)
    assert report.trip["fuel_method"] == "obd_maf"
    assert abs(report.trip["fuel_l"] / res.truth["fuel_l"] - 1) < 0.03


def test_a_silent_ecu_is_missing_and_nothing_is_integrated(hybrid_hwfet):
    report, _ = drive_obd(hybrid_hwfet, faults={"silent": True})
    trip = report.trip
    assert report.ok and trip["fuel_l"] == 0 and trip["distance_km"] == 0
    assert trip["fuel_method"] == "none" and trip["obd"]["vin"] is None and trip["obd"]["responses"] == 0
    assert {"type": "signal", "state": "lost", "name": "OBD-II"}.items() <= report.signals[0].items()
    assert "OBD-II" in report.statuses[-1]["missing"]


def test_an_ecu_that_stops_mid_drive_leaves_the_figures_up_to_then(hybrid_hwfet):
    report, _ = drive_obd(hybrid_hwfet, faults={"stop_at_s": 400})
    lost = [s for s in report.signals if s["state"] == "lost"]
    assert lost and 400 < lost[0]["t_s"] < 402
    truth_km = float(hybrid_hwfet.ecu["speed_kmh"][: 40000].sum()) * 0.01 / 3600
    assert abs(report.trip["distance_km"] / truth_km - 1) < 0.01
    assert all("OBD-II" in s["missing"] for s in report.statuses if s["t_s"] > 402)


def test_garbage_and_busy_replies_are_counted_not_believed(hybrid_hwfet):
    report, _ = drive_obd(hybrid_hwfet, faults={"garbage": 0.05, "busy": 0.05})
    trip, truth = report.trip, hybrid_hwfet.truth
    assert report.ok and trip["obd"]["negative"] > 0
    assert abs(trip["fuel_l"] / truth["fuel_l"] - 1) < 0.03


def test_an_ecu_on_29_bit_identifiers_is_found_after_11_bit_stays_silent(hybrid_hwfet):
    report, _ = drive_obd(hybrid_hwfet, extended=True)
    trip, truth = report.trip, hybrid_hwfet.truth
    assert trip["fuel_method"] == "obd_fuel_rate" and trip["obd"]["vin"] == "JS2HA97S5M0234567"
    assert abs(trip["fuel_l"] / truth["fuel_l"] - 1) < 0.01
    assert trip["obd"]["timeouts"] <= 12  # the unanswered 11-bit tries, and the engine off at the end


def test_status_lines_show_speed_and_economy_from_obd(hybrid_run):
    moving = [s for s in hybrid_run.statuses if 100 < s["t_s"] < 700]
    assert all(s["speed_kmh"] is not None and s["rolling_km_per_l"] is not None for s in moving)
    assert any(s["instant_km_per_l"] is not None for s in moving)
