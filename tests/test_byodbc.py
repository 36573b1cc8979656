"""``keidrive run --vehicle PRESET --dbc DBC --roles ROLES.toml``: a preset's drive
on a bus in a production DBC's format, the firmware running that DBC compiled
with the roles file.

The DBC is opendbc's toyota_2017_ref_pt.dbc, written by nobody here, read
through $KEIDRIVE_OPENDBC (skipped, saying so, when unset); the reference is
the simulator's ground truth and cantools' reading of the translated frames.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from keidrive.dbccompiler import compile_dbc
from keidrive.dbccompiler.budget import over_budget
from keidrive.paths import dbc_dir

OPENDBC = os.environ.get("KEIDRIVE_OPENDBC")
needs_opendbc = pytest.mark.skipif(not OPENDBC, reason="set KEIDRIVE_OPENDBC to the opendbc DBC folder")
ROLES = dbc_dir() / "roles" / "toyota_2017_ref_pt.toml"


def toyota() -> Path:
    return Path(OPENDBC) / "toyota_2017_ref_pt.dbc"


def keidrive(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "keidrive", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


@needs_opendbc
def test_toyota_roles_compile_to_a_board_sized_module():
    text = compile_dbc([toyota()], roles_path=ROLES, warn=False)
    assert over_budget(text, "toyota_2017_ref_pt.py") is None
    assert "ROLES = {" in text and "'speed': 'VSC1S03.SP1'" in text


@needs_opendbc
def test_alto_hybrid_on_the_toyota_bus_reports_its_distance():
    result = keidrive("run", "--vehicle", "alto-hybrid", "--dbc", str(toyota()), "--roles", str(ROLES), "--json")
    assert result.returncode == 0, result.stderr
    # the DBC has no fuel rate the firmware reads: said plainly, not a silent 0
    assert "keidrive: fuel cannot be computed: toyota_2017_ref_pt.toml names no signal for it" in result.stderr
    report = json.loads(result.stdout)
    truth, firmware = report["truth"], report["firmware"]
    assert abs(firmware["distance_km"] - truth["distance_km"]) <= 0.005 * truth["distance_km"]
    assert firmware["eco_score"] is not None  # the pedal role reached the eco score


@needs_opendbc
def test_fuel_over_obd_beside_the_toyota_bus(tmp_path):
    """The done-when drive, on the first 300 s of WLTC's low phase to stay lean: speed
    from the DBC's frames, fuel from the engine ECU over OBD-II on the same bus."""
    source = Path(__file__).parents[1] / "host" / "keidrive" / "resources" / "cycles" / "wltc_low_3.csv"
    cycle = tmp_path / "wltc_low_300s.csv"
    rows = [line.split(",") for line in source.read_text().splitlines()[1:302]]
    cycle.write_text("time_s,speed_kmh\n" + "".join(f"{r[0]},{float(r[1]) * 3.6:.4f}\n" for r in rows))
    result = keidrive("run", "--vehicle", "alto-hybrid", "--cycle", str(cycle), "--dbc", str(toyota()),
                      "--roles", str(ROLES), "--obd", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    truth, firmware = report["truth"], report["firmware"]
    assert truth["distance_km"] > 1.0
    assert abs(firmware["distance_km"] - truth["distance_km"]) <= 0.005 * truth["distance_km"]
    assert abs(firmware["fuel_l"] - truth["fuel_l"]) <= 0.01 * truth["fuel_l"]
    assert firmware["fuel_method"] == "obd_fuel_rate"


def test_dbc_without_roles_is_one_clear_line():
    result = keidrive("run", "--vehicle", "alto-hybrid", "--dbc", "some.dbc", "--json", timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "keidrive: error: --dbc some.dbc: a DBC file of your own car needs its roles file (--roles)"
    ]


def write_toyota_log(path: Path) -> dict:
    """alto-hybrid's WLTC drive as a log of the Toyota bus (the frames ``keidrive run --dbc
    --roles`` drives the firmware with), written by python-can; the simulator's truth."""
    import can
    from keidrive import sim
    from keidrive.dbccompiler.roles import load_roles
    from keidrive.drive import byodbc

    result = sim.simulate(sim.load_vehicle("alto-hybrid"), sim.load_cycle("wltc-jp"))
    frames = byodbc.translate(result, toyota(), load_roles(ROLES))
    with can.Logger(str(path)) as log:
        for stamp, frame_id, extended, dlc, data in zip(frames["timestamp"], frames["arbitration_id"],
                                                        frames["is_extended"], frames["dlc"], frames["data"]):
            log.on_message_received(can.Message(timestamp=float(stamp), arbitration_id=int(frame_id),
                                                is_extended_id=bool(extended), dlc=int(dlc), data=bytes(data[:dlc])))
    return result.truth


@needs_opendbc
def test_replay_of_a_toyota_log_reports_the_runs_distance(tmp_path):
    log = tmp_path / "toyota.blf"
    truth = write_toyota_log(log)
    result = keidrive("replay", str(log), "--dbc", str(toyota()), "--roles", str(ROLES), "--json")
    assert result.returncode == 0, result.stderr
    assert "keidrive: fuel cannot be computed: toyota_2017_ref_pt.toml names no signal for it" in result.stderr
    replay = json.loads(result.stdout)
    # the strict cantools load of this DBC fails; the compiler's reader explains every frame
    assert replay["explained_share"] == 1.0 and replay["unknown_frames"] == 0
    run = keidrive("run", "--vehicle", "alto-hybrid", "--dbc", str(toyota()), "--roles", str(ROLES), "--json")
    assert run.returncode == 0, run.stderr
    run_km = json.loads(run.stdout)["firmware"]["distance_km"]
    assert abs(replay["firmware"]["distance_km"] - run_km) <= 0.005 * run_km
    assert abs(replay["firmware"]["distance_km"] - truth["distance_km"]) <= 0.005 * truth["distance_km"]


def test_replay_roles_without_dbc_is_one_clear_line(tmp_path):
    log = tmp_path / "empty.asc"
    log.write_text("")
    result = keidrive("replay", str(log), "--roles", str(ROLES), "--json", timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"keidrive: error: --roles {ROLES}: a roles file needs --dbc, the DBC whose signals it names"
    ]


@needs_opendbc
def test_flash_plan_deploys_the_compiled_vehicle_module():
    result = keidrive("flash", "--board", "esp32", "--dry-run", "--json", "--dbc", str(toyota()), "--roles", str(ROLES))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["config"]["vehicle"] == "byo_toyota_2017_ref_pt"
    paths = [f["path"] for f in plan["files"]]
    assert "keifw/vehicles/byo_toyota_2017_ref_pt.mpy" in paths


def test_flash_roles_without_dbc_is_one_clear_line():
    result = keidrive("flash", "--board", "esp32", "--dry-run", "--roles", str(ROLES), timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["keidrive: error: --dbc and --roles go together"]


def test_replay_dbc_file_without_roles_is_one_clear_line(tmp_path):
    log, dbc = tmp_path / "empty.asc", tmp_path / "mycar.dbc"
    log.write_text("")
    dbc.write_text('VERSION ""\n')
    result = keidrive("replay", str(log), "--dbc", str(dbc), "--json", timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"keidrive: error: --dbc {dbc}: a DBC file of your own car needs its roles file (--roles)"
    ]
