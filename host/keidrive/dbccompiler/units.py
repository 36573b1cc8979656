"""The units a role's signal may be stated in, and their exact factors.

One table: each spelling a DBC uses (matched case-insensitively, spaces
ignored) -> (quantity, the factor taking it to the unit the firmware computes
that quantity in). A role's unit is the roles file's ``[units]`` entry, else
the DBC's; one that is not in the table for the role's quantity is a compile
error naming role, signal and unit. A wheel speed in rad/s or rpm needs the
tyre (``[tyre] radius_m`` or ``circumference_m``).

The compiled module carries each role's factor as an exact fraction
(``ROLE_FACTORS``), so the firmware knows no unit name. Where the factor times
the signal's scale is a fraction the firmware's 31-bit integration cannot
hold, the closest fraction it can is used, with a warning giving the error.
"""

from dataclasses import dataclass
from fractions import Fraction

from ..errors import KeidriveError

SPEED, FLOW, RPM, PERCENT, PRESSURE, TEMPERATURE, VOLTAGE, CURRENT, FLAG, WHEEL = (
    "speed", "flow", "rpm", "percent", "pressure", "temperature", "voltage", "current", "flag", "wheel")

# The firmware computes in km/h, L/h, rpm, %, kPa, degC, V and A.
MPH = Fraction(1609344, 10**6)   # km/h: 1 mile is 1609.344 m
US_GALLON = Fraction(3785411784, 10**9)  # L: 231 cubic inches
# pi to 12 digits, for a tyre's radius with rpm or its circumference with rad/s: a tyre's size
# is known to about 1 mm in 300 (a radius with rad/s needs no pi: it cancels).
PI = Fraction(314159265359, 10**11)
_TABLE = {
    SPEED: {
        1: "km/h kph kmh km/hr kmph kilometer/hour unit_kilometerperhour unit_kilometerperhr",
        MPH: "mph mi/h unit_milesperhour",
        Fraction(18, 5): "m/s mps m/sec meter/second unit_meterperseconds unit_meterpersecond",
        Fraction(3048, 10**4) * Fraction(18, 5): "ft/s fps ft/sec",
        Fraction(1852, 1000): "kn knot knots",
    },
    FLOW: {
        1: "L/h l/hr lph liter/hour litre/hour unit_literperhour",
        Fraction(18, 5): "mL/s ml/sec cc/s",
        Fraction(1, 1000): "mL/h ml/hr cc/h",
        Fraction(6, 100): "mL/min cc/min",
        60: "L/min lpm",
        US_GALLON: "gal/h gph",
    },
    RPM: {1: "rpm 1/min rev/min min^-1 min-1 u/min unit_minutinver unit_revolutionsperminute"},
    PERCENT: {1: "% percent pct unit_percent", 100: "fraction"},
    PRESSURE: {1: "kPa unit_kilopascal", Fraction(1, 10): "hPa mbar unit_hectopascal", 100: "bar",
               Fraction(1, 1000): "Pa unit_pascal"},
    TEMPERATURE: {1: "degC °C C deg_C degreesC celsius unit_degrecelsi"},
    VOLTAGE: {1: "V volt volts unit_volt", Fraction(1, 1000): "mV millivolt unit_millivolt"},
    CURRENT: {1: "A amp amps ampere amperes unit_amper", Fraction(1, 1000): "mA milliamp unit_milliamper"},
    FLAG: {1: " - bool boolean flag on/off yes/no unitless unit_none"},
}
# Wheel speeds are speeds, or a rotation converted with the tyre's size.
_ROTATION = {"rad/s": "radius", "rad/sec": "radius", "rpm": "circumference", "1/min": "circumference",
             "rev/min": "circumference", "unit_minutinver": "circumference"}

ROLE_QUANTITY = {
    "speed": SPEED, "wheel_fl": WHEEL, "wheel_fr": WHEEL, "wheel_rl": WHEEL, "wheel_rr": WHEEL,
    "fuel_rate": FLOW, "rpm": RPM, "pedal": PERCENT, "boost": PRESSURE, "coolant": TEMPERATURE,
    "motor_temp": TEMPERATURE, "running": FLAG, "fuel_cut": FLAG, "pack_v": VOLTAGE, "pack_i": CURRENT,
    "idle_stop": FLAG, "regen": FLAG, "assist": FLAG,
}

# The firmware's integer arithmetic (keifw/economy.py, scan.py, fixed.scale_of): a role's value
# in its unit is raw * num / den; distance and fuel divide by den * 36000 and multiply
# raw * num * (time in 100 us units, up to the message's timeout of 10 cycles) below 2**30;
# the other roles raw * num * 100 (fixed.scale_of, in 0.01 units).
_WORD = 1 << 30
_MAX_DEN = _WORD // 36000
INTEGRATED = ("speed", "fuel_rate")


def key(unit: str) -> str:
    """How a spelling is looked up: case-insensitive, spaces ignored."""
    return "".join(unit.split()).lower()


UNITS = {
    quantity: {key(spelling): Fraction(factor) for factor, spellings in table.items()
               for spelling in spellings.split(" ")}
    for quantity, table in _TABLE.items()
}
UNITS[FLAG][""] = Fraction(1)


def spellings(role: str) -> list[str]:
    quantity = ROLE_QUANTITY[role]
    table = _TABLE[SPEED if quantity == WHEEL else quantity]
    names = [spelling for spellings in table.values() for spelling in spellings.split()]
    return names + (["rad/s (with [tyre])", "rpm (with [tyre])"] if quantity == WHEEL else [])


@dataclass(frozen=True)
class Tyre:
    radius_m: Fraction | None = None
    circumference_m: Fraction | None = None


def factor(role: str, unit: str, tyre: Tyre | None) -> Fraction | None:
    """The exact factor from ``unit`` to the firmware's unit for the role, None when unknown;
    KeidriveError for a rotation without the tyre."""
    quantity = ROLE_QUANTITY[role]
    if quantity == WHEEL:
        found = UNITS[SPEED].get(key(unit))
        if found is not None or key(unit) not in _ROTATION:
            return found
        size = _ROTATION[key(unit)]
        tyre = tyre or Tyre()
        if tyre.radius_m is None and tyre.circumference_m is None:
            raise KeidriveError(f"a wheel speed in {unit} needs the tyre: [tyre] radius_m or circumference_m")
        circumference = tyre.circumference_m if tyre.circumference_m is not None else 2 * tyre.radius_m * PI
        if size == "radius":  # rad/s * r m = m/s
            return Fraction(18, 5) * circumference / (2 * PI)
        return circumference * Fraction(60, 1000)  # rev/min * c m = 0.06 c km/h
    return UNITS[quantity].get(key(unit))



def fit(role: str, value: Fraction, raw_max: int, cycle_ms: int) -> Fraction:
    """``value`` (the role's unit per raw step), or the closest fraction the firmware's 31-bit
    arithmetic holds for a signal of ``raw_max`` on a message of that cycle."""
    steps = 100  # fixed.scale_of's 0.01 units
    if role in INTEGRATED:
        steps = 100 * cycle_ms if cycle_ms > 0 else 10000  # its timeout, in 100 us units
    max_num = max(1, _WORD // (max(raw_max, 1) * max(steps, 100)))
    den = _MAX_DEN
    while True:
        closest = value.limit_denominator(den)
        if abs(closest.numerator) <= max_num or den == 1:
            return closest
        den = max(1, den * max_num // abs(closest.numerator))
