"""The firmware under faults, in the real MicroPython unix port (reduced
counts; ``keidrive bench --robustness`` runs the full ones): random frames,
bad configs, bus-off, a flood, power cuts."""

import json
import subprocess
from pathlib import Path

import pytest
from conftest import micropython_or_skip
from keidrive import faults
from keidrive.bench import robustness
from keidrive.paths import firmware_dir

MP = micropython_or_skip()
FW = Path(firmware_dir())


def test_random_frames_raise_nothing_warn_nothing_and_are_counted_by_kind():
    figures = robustness.random_frame_figures(50_000, seed=11)
    assert figures["random_frames"] >= 50_000
    assert figures["exceptions"] == 0, [r.get("failure") for r in figures["runs"]]
    assert figures["false_warnings"] == 0
    for run in figures["runs"]:
        kinds = run["rejected"]
        assert kinds["unknown_id"] and kinds["error"] and kinds["remote"] and kinds["wrong_dlc"]
        assert run["counters_agree"], run


# --- config ------------------------------------------------------------------------

BAD_CONFIGS = {
    "unknown_key": (b'{"colour": "red"}', "unknown config key 'colour'"),
    "wrong_type": (b'{"save_interval_s": "60", "transmit": 1, "profile": 5}', "must be an integer"),
    "out_of_range": (b'{"save_interval_s": 1, "rpm_limit": 99999, "can_id": -1}', "10..3600"),
    "null_not_allowed": (b'{"rpm_limit": null}', "must be an integer"),
    "float": (b'{"custom_limit_kmh": 80.5}', "must be an integer"),
    "bad_choice": (b'{"vehicle": "kei_rocket", "can_port": "usb"}', "must be one of"),
    "not_json": (b'{"vehicle": ', "not valid JSON"),
    "not_an_object": (b'[1, 2, 3]', "must be a JSON object"),
    "string": (b'"hello"', "must be a JSON object"),
    "empty": (b"", "not valid JSON"),
    "binary": (bytes(range(256)) * 8, "not UTF-8"),
    "huge": (b'{"profile": "' + b"x" * 100_000 + b'"}', "larger than"),
    "deep": (b"[" * 4000 + b"]" * 4000, "config"),
    "control_chars": (b'{"a\\u0001\\"b\\\\": 1}', "unknown config key"),
    "long_value": (b'{"profile": "' + b"y" * 5000 + b'"}', "profile must be one of"),
}


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_every_kind_of_bad_config_gives_a_clear_error_and_safe_defaults(tmp_path, case, runtime):
    text, expect = BAD_CONFIGS[case]
    cfg = tmp_path / "config.json"
    cfg.write_bytes(text)
    import sys

    exe = MP if runtime == "micropython" else sys.executable
    proc = subprocess.run([exe, str(FW / "main.py"), "--stdin", "--config", str(cfg), "--data", str(tmp_path)],
                          input=b"", capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]  # every line valid JSON
    errors = [line["message"] for line in lines if line["type"] == "error"]
    assert errors and any(expect in m for m in errors), errors
    assert all(len(m) < 400 for m in errors)
    trip = lines[-1] if lines[-1]["type"] == "trip" else next(x for x in lines if x["type"] == "trip")
    assert trip["vehicle"] in ("kei_turbo_660",) and trip["profile"] == "jp-expressway"
    assert trip["tx_frames"] == 0


def test_a_bad_config_still_runs_a_whole_drive(tmp_path):
    from keidrive import sim
    from keidrive.drive.harness import run_records
    from keidrive.io import record

    res = sim.simulate("nbox-turbo", "hwfet")
    out = run_records(record.from_frames(res.frames).tobytes(),
                      {"vehicle": "kei_turbo_660", "save_interval_s": "often", "rpm_limit": 10**30, "x": [1]})
    assert out.ok and len(out.errors) == 3
    assert abs(out.trip["distance_km"] - res.truth["distance_km"]) < 0.005 * res.truth["distance_km"]


def test_a_trip_with_a_full_warning_log_still_prints_its_summary():
    script = r"""
import sys
sys.path.insert(0, sys.argv[1])
from keifw import app
class Out:
    def __init__(self):
        self.data = b""
    def write(self, b, n=None):
        self.data += bytes(b[:n] if n is not None else b)
        return n
out = Out()
fw, _ = app.build(cfg_obj={"vehicle": "kei_turbo_660"}, out=out)
al = fw.alerts
for j in range(64):
    al.log[j * 4] = j % 4
    al.log[j * 4 + 1] = 2
    al.log[j * 4 + 2] = 99999000 + j
    al.log[j * 4 + 3] = 99999990 + j
al.log_n = 64
al.log_total = 64
fw.trip()
sys.stdout.write(out.data.decode())
"""
    proc = subprocess.run([MP, "-c", script, str(FW)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    trip = json.loads(proc.stdout)
    assert len(trip["warnings"]) == 64 and trip["warning_count"] == 64


# --- bus-off -----------------------------------------------------------------------


@pytest.mark.parametrize("wrap_ms", [0, 1500], ids=["plain", "across-the-clock-wrap"])
def test_bus_off_restarts_with_back_off_and_recovers(wrap_ms):
    result = faults.busoff_recovery(off_at_s=0.5, off_for_s=1.2, total_s=3.0, wrap_ms=wrap_ms)
    assert result["went_bus_off"] and result["recovered"], result
    gaps = result["backoff_ms"]
    assert len(gaps) >= 3
    for k, gap in enumerate(gaps):
        nominal = min(100 * 2 ** k, 5000)
        assert nominal - 5 <= gap <= nominal + 150, result  # restarts only at the 10 Hz tick
    assert result["recovered_after_ms"] is not None and result["recovered_after_ms"] <= 800 + 150
    assert result["frames"] > 300 and not result["errors"]


# --- flood -------------------------------------------------------------------------


def test_a_flood_at_full_bus_load_leaves_the_firmware_processing_its_own_ids():
    figures = robustness.flood_figures(window_s=2.0, at_s=300.0)
    assert not figures["crashed"]
    assert figures["flood_bus_load"] > 0.97
    # every flood frame is unknown (the vehicle modules decode the role messages
    # only, so the car's other messages count as unknown too)
    assert figures["unknown_frames"] >= figures["flood_frames"]
    # the flood starves the car's frames for its 2 s: at most that much driving
    # (100 km/h) is lost, none is integrated from stale data
    assert 0 <= figures["clean_distance_km"] - figures["distance_km"] <= 2.0 * 100 / 3600
    assert 0 <= figures["clean_fuel_l"] - figures["fuel_l"] <= 0.01 * figures["clean_fuel_l"]
    assert figures["false_warnings"] == []
    # how long frames wait under the flood is a figure of keidrive bench --robustness, not a test


# --- power cuts --------------------------------------------------------------------


def test_power_cuts_never_corrupt_the_store_and_lose_at_most_one_save_interval():
    figures = robustness.power_cut_figures(20, seed=5, drives=(("nbox-turbo", "hwfet"),))
    assert figures["power_cuts"] == 20
    assert figures["exceptions"] == 0
    assert figures["corrupt_loads"] == 0, figures["notes"]
    assert figures["max_lost_s"] <= figures["save_interval_s"]
    assert set(figures["by_mode"]) == {"idle", "save", "tear"}
    assert figures["final_ok"]
