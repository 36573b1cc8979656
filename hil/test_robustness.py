"""Fault scenarios through the HIL plugin: the same drive with and without a
fault, over the bus, with ``drive(..., faults=[...])``; power cuts with
``power_cut_drive``. Nothing raised, no warning the clean drive did not
raise, no driving added, nothing lost beyond one save interval."""

import pytest

from keidrive import faults as F
from keidrive.bench.robustness import false_warnings

VEHICLE, CYCLE, PROFILE = "nbox-turbo", "us06", "us-interstate"  # a drive with warnings to get wrong

SCENARIOS = {
    "drop_speed_30s": [F.Drop(0x1A0, 150.0, 30.0)],
    "corrupt_counter": [F.CorruptCounter(0x130, 100.0, 200.0, share=0.5)],
    "corrupt_checksum": [F.CorruptChecksum(0x1A0, 200.0, 20.0)],
    "wrong_dlc": [F.WrongDlc(None, 300.0, 10.0, share=0.5)],
    "error_and_remote_frames": [F.ErrorFrames(300.0, 0.0, 600.0), F.RemoteFrames(300.0, 0.0, 600.0)],
    "random_frames": [F.RandomFrames(60_000, 0.0, 600.0)],
    "flood_100pct": [F.Flood(0x000, 1.0, 250.0, 30.0)],
    "timestamp_jump": [F.TimestampJump(400.0, 30.0)],
    "bus_off": [F.BusOff(350.0, 2.0)],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_fault_raises_nothing_and_warns_nothing_new(drive, name):
    clean = drive(VEHICLE, CYCLE, PROFILE)
    faulted = drive(VEHICLE, CYCLE, PROFILE, faults=SCENARIOS[name], fault_seed=1)
    assert faulted.report.ok, faulted.report.failure()
    assert false_warnings(clean.warnings, faulted.warnings) == []
    assert faulted.trip["distance_km"] <= clean.trip["distance_km"] * 1.0005
    assert faulted.trip["fuel_l"] <= clean.trip["fuel_l"] * 1.0005
    if name in ("drop_speed_30s", "corrupt_checksum", "corrupt_counter"):
        assert faulted.trip["bad_frames"] > 0 or any(e["state"] == "lost" for e in faulted.report.signals)


def test_garbage_aimed_at_the_cars_unprotected_ids_warns_nothing_new(drive):
    # ENGINE_3 (CoolantTemp) has no CHECKSUM or COUNTER: well-formed foreign
    # frames on its id are data to the decoder; the firmware holds back a
    # temperature that jumps until it has held for a second (inputs._read)
    clean = drive(VEHICLE, CYCLE, PROFILE)
    faulted = drive(VEHICLE, CYCLE, PROFILE, faults=[F.RandomFrames(60_000, 0.0, 600.0, "kei_turbo_660")],
                    fault_seed=1)
    assert faulted.report.ok
    assert false_warnings(clean.warnings, faulted.warnings) == []


def test_a_flood_degrades_the_trip_boundedly(drive):
    """The flood arbitrates with the car's frames: at 50 % load they arrive a
    few frame times late and the trip holds to 0.5 %; at 100 % they starve,
    the firmware says its signals are lost and integrates nothing stale."""
    clean = drive(VEHICLE, CYCLE, PROFILE)
    half = drive(VEHICLE, CYCLE, PROFILE, faults=[F.Flood(0x000, 0.5, 250.0, 30.0)], fault_seed=1)
    flooded = drive(VEHICLE, CYCLE, PROFILE, faults=SCENARIOS["flood_100pct"], fault_seed=1)
    assert half.trip["distance_km"] == pytest.approx(clean.trip["distance_km"], rel=0.005)
    assert half.trip["fuel_l"] == pytest.approx(clean.trip["fuel_l"], rel=0.005)
    assert flooded.trip["unknown_frames"] > 90_000
    assert any(e["state"] == "lost" for e in flooded.report.signals)
    assert flooded.trip["distance_km"] < clean.trip["distance_km"]
    assert flooded.trip["fuel_l"] < clean.trip["fuel_l"]


def test_power_cuts_through_the_plugin(power_cut_drive):
    report = power_cut_drive("alto-hybrid", "hwfet", "us-minitruck-55", config={"save_interval_s": 10}, cuts=12, seed=4)
    assert len(report.cuts) == 12
    assert report.corrupt_loads == 0 and report.exceptions == 0
    assert report.max_lost_s <= 10
    assert report.final.ok and report.final.trip["restored"]


def test_users_build_their_own_faults(faults):
    assert faults.Flood is F.Flood and callable(faults.apply)
