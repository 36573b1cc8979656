"""The firmware's roles come from the generated module's ROLES / ROLE_UNITS,
compiled from a roles file, in the DBC's units converted exactly.

Reference for the conversions: the definitions of the units (1 m/s = 3.6
km/h, 1 mL/s = 3.6 L/h), not the code under test. The car below is written
here, its names unlike any project DBC's, so a role found only by a name the
firmware knows would be missed.
"""

from fractions import Fraction

import pytest
from conftest import run_micropython
from keidrive.dbccompiler import compile_dbc, exec_generated, import_firmware_module
from keidrive.paths import firmware_dir

DBC = """VERSION ""
NS_ :
BS_:
BU_: ECU KEIDRIVE
BO_ 256 CHASSIS: 8 ECU
 SG_ VSPD : 0|16@1+ (0.01,0) [0|90] "m/s" KEIDRIVE
 SG_ THROTTLE : 16|8@1+ (0.004,0) [0|1] "" KEIDRIVE
 SG_ FLOW : 24|16@1+ (0.0001,0) [0|6] "mL/s" KEIDRIVE
BO_ 512 HV_PACK: 8 ECU
 SG_ VOLTS : 0|16@1+ (0.03,0) [0|1900] "V" KEIDRIVE
 SG_ AMPS : 16|16@1- (0.07,0) [-2200|2200] "A" KEIDRIVE
BO_ 768 UNUSED: 8 ECU
 SG_ OTHER : 0|8@1+ (1,0) [0|255] "" KEIDRIVE
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_ "GenMsgCycleTime" BO_ 256 10;
"""

ROLES = """[roles]
speed = "CHASSIS.VSPD"
pedal = "CHASSIS.THROTTLE"
fuel_rate = "CHASSIS.FLOW"
pack_v = "HV_PACK.VOLTS"
pack_i = "HV_PACK.AMPS"
[units]
pedal = "fraction"
"""


@pytest.fixture(scope="module")
def module_text(tmp_path_factory):
    folder = tmp_path_factory.mktemp("car")
    (folder / "car.dbc").write_text(DBC)
    (folder / "car.toml").write_text(ROLES)
    return compile_dbc([folder / "car.dbc"], roles_path=folder / "car.toml", warn=False)


def test_roles_come_from_the_module(module_text):
    gen = exec_generated(module_text)
    vehicle = import_firmware_module("keifw.vehicle")
    roles = vehicle.Roles(type("Gen", (), gen))
    assert not hasattr(vehicle, "ROLE_CANDIDATES")
    assert roles.name["speed"] == "CHASSIS.VSPD" and roles.msg["speed"] == gen["MSG_INDEX_BY_NAME"]["CHASSIS"]
    assert roles.slot["pack_i"] == gen["SLOT"]["HV_PACK.AMPS"]
    assert not roles.has("rpm") and roles.name["rpm"] == ""
    assert "UNUSED" not in gen["MSG_NAMES"]
    assert roles.kind == vehicle.KIND_HYBRID  # fuel and a pack


def _fraction(sn, sd, on, od):
    return Fraction(sn, sd), Fraction(on, od)


def test_units_are_converted_exactly(module_text):
    gen = type("Gen", (), exec_generated(module_text))
    vehicle = import_firmware_module("keifw.vehicle")
    slot = gen.SLOT
    # km/h per raw: 0.01 m/s * 3.6
    assert _fraction(*vehicle.scaled(gen, slot["CHASSIS.VSPD"])) == (Fraction(1, 100) * Fraction(36, 10), 0)
    # % per raw: 0.004 of one, as a percentage
    assert _fraction(*vehicle.scaled(gen, slot["CHASSIS.THROTTLE"])) == (Fraction(4, 10), 0)
    # L/h per raw: 0.0001 mL/s * 3.6
    assert _fraction(*vehicle.scaled(gen, slot["CHASSIS.FLOW"])) == (Fraction(36, 100000), 0)
    # a unit the firmware computes in is used as stated
    assert _fraction(*vehicle.scaled(gen, slot["HV_PACK.VOLTS"])) == (Fraction(3, 100), 0)


def test_pack_power_quantum_is_an_exact_fraction_in_micropython(module_text, tmp_path):
    """0.03 V x 0.07 A = 21/10000 W per raw product: not 1/k, which an integer
    num // den turned into a power of 0. Run in the MicroPython unix port."""
    (tmp_path / "car.py").write_text(module_text)
    out = run_micropython(
        "import sys\n"
        f"sys.path[:0] = [{str(firmware_dir())!r}, {str(tmp_path)!r}]\n"
        "import car\n"
        "from keifw.vehicle import Roles\n"
        "from keifw.economy import Economy\n"
        "e = Economy(car, Roles(car))\n"
        "print(e.p_mul, e.p_div, e.quanta, e.speed_mul, e.dist_div, e.fuel_mul, e.fuel_div, e.idle_raw)\n"
    )
    p_mul, p_div, quanta, speed_mul, dist_div, fuel_mul, fuel_div, idle_raw = map(int, out.split())
    assert quanta == 1  # 1900 V x 2200 A: a pack power counted in W
    assert Fraction(p_mul, p_div) == Fraction(3, 100) * Fraction(7, 100)
    assert Fraction(speed_mul, dist_div) == Fraction(1, 100) * Fraction(36, 10) / 36000
    assert Fraction(fuel_mul, fuel_div) == Fraction(36, 100000) / 36000
    assert idle_raw == int(1 / (Fraction(1, 100) * Fraction(36, 10)))  # 1 km/h in raw units


def test_the_firmware_names_no_signal_of_the_project_dbcs():
    """Roles come from the generated module: no message or signal a roles file
    names appears in the firmware's own code (the generated vehicles/ aside)."""
    import re
    import tomllib

    from keidrive.paths import dbc_dir

    names = set()
    for roles_file in dbc_dir().glob("kei_*.toml"):
        for target in tomllib.loads(roles_file.read_text())["roles"].values():
            names.update(target.split("."))
    sources = [firmware_dir() / "main.py", *(firmware_dir() / "keifw").glob("*.py")]
    found = {(path.name, name) for path in sources for name in names
             if re.search(rf"\b{re.escape(name)}\b", path.read_text(encoding="utf-8"))}
    assert len(names) > 20 and not found
