"""J1939: a J1939PG DBC's messages match on the parameter group, on the board's scanner and in the filters.

The DBC below is written here (J1939-71's EEC1, CCVS1 and TSC1 parameter groups, ids
with the DBC's own priority and source address 0xFE); the frames carry
other priorities, source addresses and, for the PDU1 TSC1, destinations, as
a truck's ECUs send them. They go through the firmware in the MicroPython
unix port (keidrive replay's path). The real case: CSS Electronics' truck
log and J1939 demo DBC from $KEIDRIVE_SHARED (MF4, read with asammdf).
"""

import os
from pathlib import Path

import can
import pytest

from conftest import micropython_or_skip
from keidrive.dbccompiler import compile_dbc, exec_generated
from keidrive.dbccompiler.filters import MaskFilter
import keidrive

DBC = """VERSION ""
BS_:
BU_: ENGINE KEIDRIVE
BO_ 2364540158 EEC1: 8 ENGINE
 SG_ EngineSpeed : 24|16@1+ (0.125,0) [0|8031.875] "rpm" KEIDRIVE
BO_ 2566844926 CCVS1: 8 ENGINE
 SG_ WheelBasedVehicleSpeed : 8|16@1+ (0.00390625,0) [0|250.996] "km/h" KEIDRIVE
BO_ 2348875518 TSC1: 8 ENGINE
 SG_ RequestedTorque : 24|8@1+ (1,-125) [-125|125] "%" KEIDRIVE
BA_DEF_ BO_ "VFrameFormat" ENUM "StandardCAN","ExtendedCAN","reserved","J1939PG";
BA_DEF_DEF_ "VFrameFormat" "J1939PG";
"""
ROLES = '[roles]\nspeed = "CCVS1.WheelBasedVehicleSpeed"\nrpm = "EEC1.EngineSpeed"\npedal = "TSC1.RequestedTorque"\n'
SHARED = os.environ.get("KEIDRIVE_SHARED")


@pytest.fixture
def car(tmp_path):
    (tmp_path / "truck.dbc").write_text(DBC)
    (tmp_path / "truck.toml").write_text(ROLES)
    return tmp_path / "truck.dbc", tmp_path / "truck.toml"


def test_the_module_matches_on_the_parameter_group(car):
    gen = exec_generated(compile_dbc([car[0]], warn=False))
    index = gen["MSG_INDEX_BY_NAME"]
    assert gen["MSG_KEY_MASK"] == {index["TSC1"]: 0x23FF0000, index["EEC1"]: 0x23FFFF00,
                                   index["CCVS1"]: 0x23FFFF00}
    # the debug path too: EEC1 from source address 0x00 at priority 6
    assert gen["decode"](0x18F00400, bytes([0, 0, 0, 0x40, 0x1F, 0, 0, 0]), True) == {"EngineSpeed": 1000.0}


def test_the_filters_pass_every_priority_and_source_address(car):
    gen = exec_generated(compile_dbc([car[0]], warn=False))
    can_filters = [MaskFilter(i, m, flags != 0) for i, m, flags in gen["CAN_FILTERS"]]
    for frame_id in (0x0CF00400, 0x18F00417, 0x18FEF100, 0x0CFEF1EE, 0x0C000003, 0x0C00FF03):
        assert any(f.accepts(frame_id, True) for f in can_filters), hex(frame_id)
    masks = gen["MCP2515_MASKS"]
    assert all(mask & 0xFF == 0 for mask, extended in masks if extended)


def _frame(t, frame_id, data):
    return can.Message(timestamp=t, arbitration_id=frame_id, is_extended_id=True, data=data)


def _replay(messages, dbc, roles, folder):
    """The frames as a log file (python-can's ASC writer) replayed into the firmware, as
    `keidrive replay LOG --dbc DBC --roles ROLES` does: its trip."""
    path = folder / "frames.asc"
    with can.Logger(str(path)) as writer:
        for message in messages:
            writer.on_message_received(message)
    return keidrive.replay(path, dbc=dbc, roles=roles, min_explained=0).summary


def test_frames_of_any_priority_and_source_address_reach_the_firmware(car, tmp_path):
    micropython_or_skip()
    messages = []
    for k in range(600):  # 60 s: the engine at 1000 rpm, the truck at 36 km/h
        t = k * 0.1
        messages.append(_frame(t, 0x0CF00400 if k % 2 else 0x18F0043D, bytes([0, 0, 0, 0x40, 0x1F, 0, 0, 0])))
        messages.append(_frame(t + 0.01, 0x18FEF100, bytes([0, 0x00, 0x24, 0, 0, 0, 0, 0])))
        messages.append(_frame(t + 0.02, 0x0C000003 | (k % 3) << 8, bytes(8)))  # TSC1 to destinations 0..2
        messages.append(_frame(t + 0.03, 0x18FEF2EE, bytes(8)))  # another parameter group: unknown
    trip = _replay(messages, *car, tmp_path)
    assert trip["unknown_frames"] == 600 and trip["bad_frames"] == 0
    assert 0.58 < trip["distance_km"] < 0.61  # 36 km/h for 60 s, less the first frames before valid


def test_a_roles_file_pins_a_source_address(car, tmp_path):
    micropython_or_skip()
    roles = tmp_path / "pinned.toml"
    roles.write_text(ROLES + "[source]\nCCVS1 = 0x17\n")
    gen = exec_generated(compile_dbc([car[0]], roles_path=roles, warn=False))
    assert gen["MSG_KEY_MASK"][gen["MSG_INDEX_BY_NAME"]["CCVS1"]] == 0x23FFFFFF
    messages = [_frame(k * 0.1, 0x18FEF100 if k % 2 else 0x18FEF117, bytes([0, 0x00, 0x24, 0, 0, 0, 0, 0]))
                for k in range(100)]
    assert _replay(messages, car[0], roles, tmp_path)["unknown_frames"] == 50  # the frames of source address 0x00


@pytest.mark.skipif(not SHARED, reason="set KEIDRIVE_SHARED to the shared folder (logs/css)")
def test_the_css_truck_log_matches_whatever_source_address_and_priority():
    """The demo DBC's ids carry source address 0xFE; the truck's ECUs send 0x00 (and other
    priorities): every EEC1 and CCVS1 frame is the firmware's, the rest of the bus is not."""
    micropython_or_skip()
    from keidrive.io.drivelog import coverage, read_drive_log
    from keidrive.paths import dbc_dir

    dbc = Path(SHARED) / "logs" / "css" / "CSS-Electronics-SAE-J1939-DEMO.dbc"
    log = read_drive_log(Path(SHARED) / "logs" / "css" / "j1939_idle_11111111.MF4")
    pgns = {0xF004: 0, 0xFEF1: 0}
    for message in log.messages:
        pgn = (message.arbitration_id >> 8) & 0xFFFF
        if message.is_extended_id and pgn in pgns:
            pgns[pgn] += 1
    unknown, share = coverage(log.messages, str(dbc))
    assert unknown == len(log.messages) - sum(pgns.values())
    trip = keidrive.replay(Path(SHARED) / "logs" / "css" / "j1939_idle_11111111.MF4", dbc=dbc,
                           roles=dbc_dir() / "roles" / "css_j1939_demo.toml", min_explained=0.2).summary
    print(f"\n{len(log.messages)} frames, EEC1 {pgns[0xF004]}, CCVS1 {pgns[0xFEF1]}, explained {share:.4f}; "
          f"trip: {trip['duration_s']} s, {trip['distance_km']} km, idle {trip['idle_s']} s, "
          f"unknown {trip['unknown_frames']}")
    assert trip["unknown_frames"] == unknown and trip["bad_frames"] == 0
    assert trip["distance_km"] == 0  # an idling truck
