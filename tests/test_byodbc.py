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
    assert result.stderr.strip().splitlines()[-1] == "keidrive: error: --dbc and --roles go together"
