"""The data-quality row and the ``quality`` object of keidrive replay and run:
a log whose wheel speeds read 0 names them faulty, the trip carried by the
vehicle speed; figures that cannot be computed print as a dash, not -100 %."""

import json
import os

import can
import pytest
from conftest import SHORT_CYCLE, keidrive, micropython_or_skip, one_line_error
from keidrive import faults, report
from keidrive.io import record
from keidrive.sim import load_cycle, load_vehicle, simulate

WHEELS = ("WheelSpeedFL", "WheelSpeedFR", "WheelSpeedRL", "WheelSpeedRR")


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, KEIDRIVE_BUS_DIR=str(tmp_path / "bus"))


@pytest.fixture(scope="module")
def dead_wheels(tmp_path_factory):
    """A 34 s N-BOX drive whose wheel speeds read 0, as a .blf, and its truth."""
    folder = tmp_path_factory.mktemp("quality")
    cycle = folder / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    result = simulate(load_vehicle("nbox-turbo"), load_cycle(str(cycle)))
    records = faults.apply(record.from_frames(result.frames),
                           [faults.ScaleSignals(0x1A4, WHEELS, 0.0, dbc="kei_turbo_660")])
    log = folder / "dead-wheels.blf"
    with can.Logger(str(log)) as writer:
        for r in records:
            writer.on_message_received(can.Message(
                timestamp=int(r["timestamp_us"]) / 1e6, arbitration_id=int(r["can_id"]), is_extended_id=False,
                dlc=int(r["dlc"]), data=bytes(r["data"][: r["dlc"]])))
    return log, result.truth


def test_replay_names_the_faulty_sources_in_its_quality_row_and_json(dead_wheels, env):
    micropython_or_skip()
    log, truth = dead_wheels
    out = keidrive("replay", str(log), "--json", env=env)
    assert out.returncode == 0, out.stderr
    quality = json.loads(out.stdout)["quality"]
    assert {(f["source"], f["reason"]) for f in quality["faulty"]} == {
        (f"WHEEL_SPEEDS.{w}", "zero") for w in WHEELS}
    assert [s["source"] for s in quality["sources"]] == ["VEHICLE_SPEED.VehicleSpeed"]
    firmware = json.loads(out.stdout)["firmware"]
    assert abs(firmware["distance_km"] / truth["distance_km"] - 1) < 0.01
    text = keidrive("replay", str(log), env=env)
    assert text.returncode == 0, text.stderr
    row = " ".join(line for line in text.stdout.splitlines() if "data quality" in line or "faulty" in line)
    assert "faulty: WHEEL_SPEEDS.WheelSpeedFL (zero" in " ".join(text.stdout.split())
    assert row.startswith("data quality: speed from VEHICLE_SPEED.VehicleSpeed")


def test_figures_that_cannot_be_computed_print_as_a_dash():
    from io import StringIO

    from rich.console import Console

    trip = {"distance_km": 15.0, "fuel_l": None, "km_per_l": None, "l_per_100km": None, "mpg_us": None,
            "energy_kwh": None, "eco_score": None, "idle_s": 12.0, "idle_fuel_l": None, "warnings": [],
            "quality": {"sources": [{"source": "wheels", "lead_s": 60.0}], "fallback_s": 0.0, "fallback_km": 0.0,
                        "untrusted_s": 4.5, "rejected": {"counter": 3, "stale": 0}, "faulty": [],
                        "not_measured": ["fuel", "eco_score"]}}
    truth = {"distance_km": 15.0, "fuel_l": 0.7, "km_per_l": 21.4, "l_per_100km": 4.67, "mpg_us": 50.4,
             "energy_kwh": -0.012}
    buffer = StringIO()
    report.print_report(trip, truth, Console(file=buffer, width=200), "t")
    text = buffer.getvalue()
    assert "-100" not in text and "│ fuel         │       0.700 L │         — │" in text
    assert "eco score —" in text and "idle 12 s (—)" in text
    assert ("data quality: speed from wheels 60.0 s; 4.5 s without a trusted speed (no distance counted); frames "
            "rejected: counter 3; not measured: fuel, eco_score") in text


def test_a_second_ecu_without_obd_is_one_line(env):
    one_line_error(keidrive("run", "--obd-second-ecu", "silent", "--json", env=env), "needs --obd")
