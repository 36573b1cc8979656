"""Figures you can trust when the bus disagrees or lies, in the real MicroPython
firmware: forged frames, same-timestamp spikes, dead, frozen and mis-united
speed sensors, a logger gap, sources missing. Each fault goes into the
simulator's traffic through keidrive.faults (frames decoded, changed and
re-encoded with a valid CHECKSUM), and the trip must stay within 1 % of the
physics while one source stays trustworthy, with the quality fields naming
what happened; with no trustworthy source, the time it had none."""

import numpy as np
import pytest
from conftest import micropython_or_skip
from keidrive import faults
from keidrive.drive import byodbc
from keidrive.io import record
from keidrive.drive.harness import firmware_config, run_firmware, run_records
from keidrive.paths import dbc_dir
from keidrive.sim import load_cycle, load_vehicle, simulate

micropython_or_skip()

DBC = "kei_turbo_660"
SPEED, WHEELS_ID = 0x1A0, 0x1A4
WHEELS = ("WheelSpeedFL", "WheelSpeedFR", "WheelSpeedRL", "WheelSpeedRR")
WHEEL_SOURCES = [f"WHEEL_SPEEDS.{w}" for w in WHEELS]


@pytest.fixture(scope="module")
def drive():
    result = simulate(load_vehicle("nbox-turbo"), load_cycle("wltc-jp"))
    return result.truth, record.from_frames(result.frames), result.trace


@pytest.fixture(scope="module")
def clean(drive):
    return _run(drive[1])


def _run(records, **config):
    out = run_firmware(records, vehicle="nbox-turbo", config=config or None)
    assert out.ok, out.failure()
    return out


def _faulted(drive, *fault):
    return _run(faults.apply(drive[1], list(fault), seed=1))


def _within(trip, truth, share=0.01):
    assert abs(trip["distance_km"] / truth["distance_km"] - 1) < share, (trip["distance_km"], truth["distance_km"])
    assert abs(trip["fuel_l"] / truth["fuel_l"] - 1) < share, (trip["fuel_l"], truth["fuel_l"])


def _faulty(trip):
    return {(f["source"], f["reason"]) for f in trip["quality"]["faulty"]}


def test_a_clean_drive_names_its_source_and_nothing_faulty(drive, clean):
    trip = clean.trip
    _within(trip, drive[0], 0.003)
    q = trip["quality"]
    assert q["sources"] == [{"source": "VEHICLE_SPEED.VehicleSpeed", "lead_s": trip["duration_s"]}]
    assert q["faulty"] == [] and q["not_measured"] == [] and q["untrusted_s"] == 0 and q["fallback_s"] == 0
    assert {k for k, n in q["rejected"].items() if n} <= {"stale"}  # the first frames, before two agree
    assert all(s["quality"]["speed_source"] == "VEHICLE_SPEED.VehicleSpeed" for s in clean.statuses[2:])


def test_forged_frames_with_a_repeated_counter_change_nothing_the_tick_reads(drive, clean):
    # a foreign node's VEHICLE_SPEED at 0 km/h before every tick (CHECKSUM
    # right, COUNTER repeated): before, the tick read them and the trip lost
    # 99.8 % of its distance
    out = _faulted(drive, faults.Forge(SPEED, (("VehicleSpeed", 0.0),), dbc=DBC))
    trip = out.trip
    _within(trip, drive[0], 0.003)
    assert trip["quality"]["rejected"]["counter"] > 14000 and trip["quality"]["faulty"] == []
    assert trip["warnings"] == clean.trip["warnings"] == []


def test_forged_speed_and_wheels_raise_no_warning(drive):
    # ... and 140 km/h on the vehicle speed and the wheels (the wheels have no
    # COUNTER: their speed check rejects the jumps): before, a critical
    # overspeed for the whole drive
    out = _faulted(drive, faults.Forge(SPEED, (("VehicleSpeed", 140.0),), dbc=DBC),
                   faults.Forge(WHEELS_ID, tuple((w, 140.0) for w in WHEELS), dbc=DBC))
    trip = out.trip
    assert trip["warnings"] == [] and out.warnings == []
    _within(trip, drive[0], 0.003)
    assert trip["quality"]["rejected"]["plausibility"] > 14000


def test_a_frame_at_the_timestamp_of_the_last_is_checked_too(drive):
    # 20 frames of 0 km/h, each with the next COUNTER and the timestamp of
    # the car's frame before it: before, a 0 us step skipped the check and
    # the spike became the reference (-4.6 %)
    out = _faulted(drive, faults.SameTimeSpike(SPEED, (("VehicleSpeed", 0.0),), 20, t0=1180.0, duration=150.0,
                                               dbc=DBC))
    trip = out.trip
    _within(trip, drive[0], 0.003)
    assert trip["quality"]["rejected"]["plausibility"] == 20 and trip["quality"]["faulty"] == []


def test_wheels_at_zero_are_faulty_and_the_vehicle_speed_carries_the_trip(drive):
    # before: the speed was implausible all drive, 99.8 % of the distance lost
    out = _faulted(drive, faults.ScaleSignals(WHEELS_ID, WHEELS, 0.0, dbc=DBC))
    trip = out.trip
    _within(trip, drive[0], 0.003)
    assert _faulty(trip) == {(w, "zero") for w in WHEEL_SOURCES}
    moving = [s for s in out.statuses if s["speed_kmh"] and s["speed_kmh"] > 20]
    assert moving and all(s["implausible"] == WHEEL_SOURCES and not s["valid"] for s in moving[5:])
    assert all(s["quality"]["faulty"] == [{"source": w, "reason": "zero"} for w in WHEEL_SOURCES]
               for s in moving[5:])


def test_front_wheels_at_zero_only_those_are_faulty(drive):
    # a car with only the rear wheels turning, or a logger missing the front ones
    out = _faulted(drive, faults.ScaleSignals(WHEELS_ID, WHEELS[:2], 0.0, dbc=DBC))
    _within(out.trip, drive[0], 0.003)
    assert _faulty(out.trip) == {(w, "zero") for w in WHEEL_SOURCES[:2]}


def test_wheels_in_another_unit_are_a_scale_fault(drive):
    # m/s where the DBC says km/h: before, 99.6 % of the distance lost
    out = _faulted(drive, faults.ScaleSignals(WHEELS_ID, WHEELS, 1 / 3.6, dbc=DBC))
    _within(out.trip, drive[0], 0.003)
    assert _faulty(out.trip) == {(w, "scale") for w in WHEEL_SOURCES}


def test_a_frozen_vehicle_speed_hands_the_trip_to_the_wheels(drive):
    # stuck for 300 s while the wheels move: before, 33 % of the distance lost
    out = _faulted(drive, faults.FreezeSignals(SPEED, ("VehicleSpeed",), t0=1100.0, duration=300.0, dbc=DBC))
    trip = out.trip
    _within(trip, drive[0])
    q = trip["quality"]
    assert _faulty(trip) == {("VEHICLE_SPEED.VehicleSpeed", "frozen")}
    assert 290 <= q["fallback_s"] <= 300 and q["fallback_km"] > 5 and q["untrusted_s"] == 0
    assert [s["source"] for s in q["sources"]] == ["VEHICLE_SPEED.VehicleSpeed", "wheels"]
    during = [s for s in out.statuses if 1110 <= s["t_s"] <= 1390]
    assert during and all(s["quality"]["speed_source"] == "wheels" for s in during)


def test_a_vehicle_speed_dead_at_zero_hands_the_trip_to_the_wheels(drive):
    out = _faulted(drive, faults.ScaleSignals(SPEED, ("VehicleSpeed",), 0.0, dbc=DBC))
    trip = out.trip
    _within(trip, drive[0])
    assert _faulty(trip) == {("VEHICLE_SPEED.VehicleSpeed", "zero")}
    assert trip["quality"]["fallback_km"] > 0.98 * drive[0]["distance_km"]


def test_a_logger_gap_is_time_without_a_trusted_speed(drive, clean):
    # 3 s of nothing: what the gap drove is not measured, and said so
    out = _faulted(drive, faults.Drop(None, 700.0, 3.0))
    q = out.trip["quality"]
    assert 2.5 <= q["untrusted_s"] <= 3.5
    trace = drive[2]
    t = np.asarray(trace["time_s"])
    at = (t >= 700.0) & (t < 703.0)
    gap_km = float(np.trapezoid(np.asarray(trace["speed_kmh"])[at], t[at])) / 3600
    lost = clean.trip["distance_km"] - out.trip["distance_km"]
    assert gap_km > 0.005 and abs(lost - gap_km) < 0.1 * gap_km + 0.001


def test_without_any_speed_source_the_report_says_how_long(drive, clean):
    # the vehicle speed and the wheels silent for 60 s (the engine's frames go on)
    out = _faulted(drive, faults.Drop(SPEED, 600.0, 60.0), faults.Drop(WHEELS_ID, 600.0, 60.0))
    q = out.trip["quality"]
    assert 59.0 <= q["untrusted_s"] <= 61.0
    during = [s for s in out.statuses if 602 <= s["t_s"] <= 658]
    assert during and all(s["speed_kmh"] is None and s["quality"]["speed_source"] is None for s in during)
    assert out.trip["distance_km"] < clean.trip["distance_km"]


DECODE_COMMIT = r"""
import sys
sys.path.insert(0, sys.argv[1])
import struct
from keifw import app
from keifw.vehicles import kei_turbo_660 as gen
class Null:
    def write(self, b, n=None): return n
fw, _ = app.build(cfg_obj={"vehicle": "kei_turbo_660"}, out=Null())
slot = gen.SLOT["VEHICLE_SPEED.VehicleSpeed"]
buf = bytearray(24 * 8)
def frame(j, t, kmh, counter):
    data = bytearray(8)
    data[0] = kmh * 100 & 0xFF
    data[1] = kmh * 100 >> 8
    data[6] = counter & 0xF
    crc = 0xFF
    for b in data[:7]:
        crc = gen._CRC8_SAEJ1850_TABLE[crc ^ b]
    data[7] = crc ^ 0xFF
    struct.pack_into("<QIBBH8s", buf, 24 * j, t, 0x1A0, 0, 8, 0, bytes(data))
frame(0, 1000, 50, 0)
frame(1, 21000, 50, 1)
frame(2, 41000, 50, 2)
frame(3, 61000, 51, 3)
fw.records(buf, 4, True)
before = fw.values[slot]
frame(0, 61500, 0, 3)   # the COUNTER repeated: rejected
fw.records(buf, 1, True)
after_counter = fw.values[slot]
frame(0, 81000, 120, 4)  # the COUNTER right, 69 km/h in 20 ms: rejected
fw.records(buf, 1, True)
after_jump = fw.values[slot]
print(before, after_counter, after_jump, fw.econ.p[25], fw.econ.p[27])
"""


def test_a_rejected_frame_changes_none_of_the_values(tmp_path):
    from conftest import run_micropython
    from keidrive.paths import firmware_dir

    out = run_micropython(DECODE_COMMIT, str(firmware_dir())).split()
    assert out == ["5100", "5100", "5100", "1", "1"]  # values as the last good frame; a counter and a plausibility reject


def _roles_without(tmp_path, *dropped):
    """The project's turbo roles file without some roles, compiled into a
    copy of the firmware."""
    import tomllib

    roles = tomllib.loads((dbc_dir() / f"{DBC}.toml").read_text())["roles"]
    kept = {k: v for k, v in roles.items() if k not in dropped}
    path = tmp_path / "roles.toml"
    path.write_text("[roles]\n" + "".join(f'{k} = "{v}"\n' for k, v in kept.items()))
    tree, name, _ = byodbc.build_tree(dbc_dir() / f"{DBC}.dbc", path, tmp_path / "tree")
    return tree, name


def _run_tree(records, tree, name):
    out = run_records(records.tobytes(), {**firmware_config("nbox-turbo"), "vehicle": name}, tree=tree)
    assert out.ok, out.failure()
    return out


def test_idle_time_comes_with_idle_fuel_without_a_running_signal(drive, clean, tmp_path):
    # no EngineRunning role (a truck's DBC): the engine runs by its rpm.
    # Before: idle fuel counted, idle time 0
    tree, name = _roles_without(tmp_path, "running")
    trip = _run_tree(drive[1], tree, name).trip
    assert trip["idle_fuel_l"] > 0.02 and abs(trip["idle_s"] - clean.trip["idle_s"]) <= 1.0


def test_figures_without_their_inputs_are_null(drive, tmp_path):
    # no fuel rate and no pedal: fuel and the eco score are not measured.
    # Before: fuel 0.000 L (-100 %) and an eco score of 100 minus speed terms
    tree, name = _roles_without(tmp_path, "fuel_rate", "pedal")
    trip = _run_tree(drive[1], tree, name).trip
    assert trip["fuel_l"] is None and trip["km_per_l"] is None and trip["idle_fuel_l"] is None
    assert trip["eco_score"] is None and trip["energy_kwh"] is None
    assert trip["quality"]["not_measured"] == ["fuel", "eco_score"]
    _within({**trip, "fuel_l": drive[0]["fuel_l"]}, drive[0], 0.003)


def test_forged_frames_are_well_formed_and_repeat_the_counter(drive):
    # read back by cantools: the value asked for, the COUNTER of the car's
    # frame before, a valid CRC-8/SAE-J1850 (cantools checks no CRC: here,
    # bit by bit, held to the CRC catalogue's check value)
    import cantools

    def crc8_sae_j1850(data: bytes) -> int:
        crc = 0xFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1D if crc & 0x80 else crc << 1) & 0xFF
        return crc ^ 0xFF

    assert crc8_sae_j1850(b"123456789") == 0x4B
    msg = cantools.database.load_file(str(dbc_dir() / f"{DBC}.dbc")).get_message_by_frame_id(SPEED)
    recs = faults.apply(drive[1], [faults.Forge(SPEED, (("VehicleSpeed", 42.0),), t0=100.0, duration=1.0, dbc=DBC)])
    own = recs[(recs["can_id"] == SPEED) & (recs["timestamp_us"] >= 99_900_000) & (recs["timestamp_us"] < 101_000_000)]
    decoded = [msg.decode(bytes(r["data"]), decode_choices=False) for r in own]
    forged = [k for k, v in enumerate(decoded) if v["VehicleSpeed"] == 42.0]
    assert len(forged) == 10  # ten a second
    assert all(k > 0 and decoded[k]["COUNTER"] == decoded[k - 1]["COUNTER"] for k in forged)
    assert all(crc8_sae_j1850(bytes(r["data"][:7])) == r["data"][7] for r in own)
