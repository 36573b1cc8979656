"""A role's unit: one table of spellings, case-insensitive, exact factors; an unknown unit is an error.

References: the definitions of the units (1 mile = 1609.344 m, 1 US gallon =
3.785411784 L, 1 ft = 0.3048 m), not the table under test; opendbc's DBCs for
the spellings real files use (Tesla's "MPH", Hyundai's "km/h or MPH", Ford's
wheel speeds in rad/s, read from the opendbc package when it is installed).
"""

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from keidrive.dbccompiler import compile_dbc, exec_generated, import_firmware_module
from keidrive.dbccompiler import units
from keidrive.errors import KeidriveError

DBC = """VERSION ""
BS_:
BU_: ECU KEIDRIVE
BO_ 280 DRIVE: 8 ECU
 SG_ Speed : 16|12@1+ (0.05,-25) [-25|179.75] "{speed}" KEIDRIVE
 SG_ Flow : 0|16@1+ (0.001,0) [0|60] "{flow}" KEIDRIVE
BO_ 281 WHEELS: 8 ECU
 SG_ WheelFL : 0|16@1+ (0.01,0) [0|300] "{wheel}" KEIDRIVE
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_ "GenMsgCycleTime" BO_ 280 10;
BA_ "GenMsgCycleTime" BO_ 281 10;
"""


def _compile(tmp_path, speed="km/h", flow="L/h", wheel="km/h", extra=""):
    (tmp_path / "car.dbc").write_text(DBC.format(speed=speed, flow=flow, wheel=wheel))
    roles = tmp_path / "car.toml"
    roles.write_text('[roles]\nspeed = "DRIVE.Speed"\nfuel_rate = "DRIVE.Flow"\nwheel_fl = "WHEELS.WheelFL"\n' + extra)
    return compile_dbc([tmp_path / "car.dbc"], roles_path=roles, warn=False)


def _per_raw(module: str, role: str) -> Fraction:
    """The firmware's unit per raw step of the role's signal, as the firmware derives it."""
    gen = type("Gen", (), exec_generated(module))
    vehicle = import_firmware_module("keifw.vehicle")
    sn, sd, _, _ = vehicle.scaled(gen, gen.SLOT[gen.ROLES[role]])
    return Fraction(sn, sd)


@pytest.mark.parametrize("spelling", ["mph", "MPH", "Mph", "mi/h"])
def test_mph_in_any_case_is_converted(tmp_path, spelling):
    """opendbc's Tesla DI_vehicleSpeed says "MPH": it was used as km/h."""
    per_raw = _per_raw(_compile(tmp_path, speed=spelling), "speed")
    exact = Fraction(5, 100) * Fraction(1609344, 10**6)
    assert abs(per_raw - exact) / exact < 1e-6, per_raw


@pytest.mark.parametrize("spelling, factor", [
    ("km/h", 1), ("KPH", 1), ("km / h", 1), ("Unit_KiloMeterPerHour", 1), ("m/s", Fraction(36, 10)),
    ("ft/s", Fraction(3048, 10**4) * Fraction(36, 10)),
])
def test_speed_spellings_and_their_exact_factors(spelling, factor):
    assert units.factor("speed", spelling, None) == factor


@pytest.mark.parametrize("spelling, factor", [
    ("L/h", 1), ("l/h", 1), ("mL/s", Fraction(36, 10)), ("ML/S", Fraction(36, 10)),
    ("gal/h", Fraction(3785411784, 10**9)), ("mL/min", Fraction(6, 100)),
])
def test_fuel_flow_spellings_and_their_exact_factors(spelling, factor):
    assert units.factor("fuel_rate", spelling, None) == factor


def test_percent_and_fraction():
    assert units.factor("pedal", "%", None) == 1 and units.factor("pedal", "Fraction", None) == 100


@pytest.mark.parametrize("speed, words", [
    ("km/h or MPH", "role speed = 'DRIVE.Speed': the DBC gives unit 'km/h or MPH', not a known unit of speed"),
    ("", "role speed = 'DRIVE.Speed': the DBC gives no unit, not a known unit of speed"),
    ("rpm", "role speed = 'DRIVE.Speed': the DBC gives unit 'rpm', not a known unit of speed"),
])
def test_a_unit_not_in_the_table_is_a_compile_error_naming_role_signal_and_unit(tmp_path, speed, words):
    (tmp_path / "car.dbc").write_text(DBC.format(speed=speed, flow="L/h", wheel="km/h"))
    (tmp_path / "car.toml").write_text('[roles]\nspeed = "DRIVE.Speed"\n')
    result = subprocess.run([sys.executable, "-m", "keidrive", "dbc", "compile", str(tmp_path / "car.dbc"),
                             "--roles", str(tmp_path / "car.toml"), "-o", str(tmp_path / "out.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr and "state it in the roles file's [units]" in result.stderr
    assert not (tmp_path / "out.py").exists()


def test_the_roles_file_states_what_the_dbc_does_not(tmp_path):
    """Hyundai's "km/h or MPH": the user knows which their car sends."""
    per_raw = _per_raw(_compile(tmp_path, speed="km/h or MPH", extra='[units]\nspeed = "mph"\n'), "speed")
    assert abs(per_raw / (Fraction(5, 100) * Fraction(1609344, 10**6)) - 1) < 1e-6


def test_a_wheel_speed_in_rad_per_second_needs_the_tyre(tmp_path):
    with pytest.raises(KeidriveError, match=r"role wheel_fl = 'WHEELS.WheelFL': a wheel speed in rad/s needs the "
                                            r"tyre: \[tyre\] radius_m or circumference_m"):
        _compile(tmp_path, wheel="rad/s")
    tyre = units.Tyre(radius_m=Fraction(279, 1000))
    assert units.factor("wheel_fl", "rad/s", tyre) == Fraction(279, 1000) * Fraction(36, 10)  # m/s per rad/s
    module = _compile(tmp_path, wheel="rad/s", extra="[tyre]\nradius_m = 0.279\n")
    # 0.01 rad/s x 0.279 m = 0.010044 km/h: held within the firmware's arithmetic
    assert abs(_per_raw(module, "wheel_fl") / (Fraction(1, 100) * Fraction(279, 1000) * Fraction(36, 10)) - 1) < 1e-5


def test_a_wheel_speed_in_rpm_with_the_tyre_circumference(tmp_path):
    tyre = units.Tyre(circumference_m=Fraction(1753, 1000))
    assert units.factor("wheel_fl", "RPM", tyre) == Fraction(1753, 1000) * Fraction(60, 1000)  # km/h per rpm
    module = _compile(tmp_path, wheel="rpm", extra="[tyre]\ncircumference_m = 1.753\n")
    assert abs(_per_raw(module, "wheel_fl") / (Fraction(1, 100) * Fraction(1753, 1000) * Fraction(6, 100)) - 1) < 1e-5


@pytest.mark.parametrize("table, words", [
    ("[tyre]\nradius_m = -1\n", "[tyre] radius_m = -1 is not a length in metres above 0"),
    ("[tyre]\nradius_m = 0.3\ncircumference_m = 1.9\n", "[tyre] must hold one of radius_m or circumference_m"),
    ('[units]\nspeed = "furlongs"\n', "[units] speed = 'furlongs' is not a known unit of speed"),
])
def test_bad_tyre_or_unit_tables(tmp_path, table, words):
    with pytest.raises(KeidriveError, match=words.replace("[", r"\[").replace("]", r"\]")):
        _compile(tmp_path, extra=table)


def test_a_factor_the_firmware_cannot_hold_is_the_closest_it_can_with_a_warning(tmp_path, capsys):
    """mph into km/h is 25146/15625: times a 0.05 scale, too fine a fraction for the firmware's
    31-bit integration of a 12-bit signal; the closest one it holds is used and said."""
    (tmp_path / "car.dbc").write_text(DBC.format(speed="MPH", flow="L/h", wheel="km/h"))
    (tmp_path / "car.toml").write_text('[roles]\nspeed = "DRIVE.Speed"\n')
    module = compile_dbc([tmp_path / "car.dbc"], roles_path=tmp_path / "car.toml")
    warning = capsys.readouterr().err
    assert "role speed = 'DRIVE.Speed': MPH x scale 1/20 = 12573/156250 per raw step, held as " in warning
    assert "within the firmware's 31-bit arithmetic" in warning
    num, den = exec_generated(module)["ROLE_FACTORS"]["speed"]
    assert abs(Fraction(num, den) / Fraction(1609344, 10**6) - 1) < 1e-6


OPENDBC_CASES = [
    # (file, role, "MESSAGE.Signal", unit in the file)
    ("tesla_can.dbc", "speed", "DI_torque2.DI_vehicleSpeed", "MPH"),
    ("hyundai_2015_ccan.dbc", "speed", "CLU11.CF_Clu_Vanz", "km/h or MPH"),
    ("ford_cgea1_2_ptcan_2011.dbc", "wheel_fl", "WheelSpeed_CG1.WhlFl_W_Meas", "rad/s"),
]


@pytest.mark.parametrize("name, role, target, unit", OPENDBC_CASES)
def test_opendbc_units(tmp_path, name, role, target, unit):
    opendbc = pytest.importorskip("opendbc")
    path = Path(opendbc.__file__).parent / "dbc" / name
    roles = tmp_path / "roles.toml"
    roles.write_text(f'[roles]\n{role} = "{target}"\n')
    if unit == "MPH":
        gen = exec_generated(compile_dbc([path], roles_path=roles, warn=False))
        assert gen["ROLE_UNITS"][role] == "MPH"
        num, den = gen["ROLE_FACTORS"][role]
        assert abs(Fraction(num, den) / Fraction(1609344, 10**6) - 1) < 1e-4
        return
    with pytest.raises(KeidriveError, match=f"role {role} = '{target}': "):
        compile_dbc([path], roles_path=roles, warn=False)
