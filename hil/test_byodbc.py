"""A preset driven on a production DBC's bus through a roles file: opendbc's
toyota_2017_ref_pt.dbc (read through $KEIDRIVE_OPENDBC) with the project's
dbc/roles/toyota_2017_ref_pt.toml. The DBC has no fuel rate the firmware
reads: fuel comes from the engine ECU over OBD-II on the same bus."""

import os
from pathlib import Path

import pytest
from keidrive.paths import dbc_dir

OPENDBC = os.environ.get("KEIDRIVE_OPENDBC")
pytestmark = pytest.mark.skipif(not OPENDBC, reason="set KEIDRIVE_OPENDBC to the opendbc DBC folder")


def test_alto_hybrid_on_the_toyota_bus_with_fuel_over_obd(drive):
    run = drive("alto-hybrid", "hwfet", obd=True, dbc=str(Path(OPENDBC or ".") / "toyota_2017_ref_pt.dbc"),
                roles=str(dbc_dir() / "roles" / "toyota_2017_ref_pt.toml"))
    assert run.trip["vehicle"] == "byo_toyota_2017_ref_pt"
    assert abs(run.trip["distance_km"] / run.truth["distance_km"] - 1) < 0.005
    assert abs(run.trip["fuel_l"] / run.truth["fuel_l"] - 1) < 0.01
