"""Vehicle presets: editable TOML files.

``load_vehicle(name_or_path) -> Vehicle`` accepts a bundled preset name
(``alto-na``, ``alto-hybrid``, ``nbox-turbo``, ``sakura-ev``; see
``list_vehicles()``) or the path of a TOML file with the same layout. Every
parameter is checked against a plausible physical range; a missing or
out-of-range one raises ``KeidriveError`` naming the parameter and the file.
Copy a preset (``resources/vehicles/*.toml``) to start your own car: every
value there carries its source, or says ``estimate``, in a comment.

``Vehicle.p("section.key")`` returns a parameter; ``Vehicle.data`` is the
parsed TOML.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import KeidriveError, did_you_mean
from ..paths import resources_dir

POWERTRAINS = ("ice", "mild_hybrid", "ev")

# key: (min, max) for numbers; lists are checked element-wise.
_COMMON = {
    "body.curb_mass_kg": (300, 3000),
    "body.test_load_kg": (0, 500),
    "body.cd": (0.15, 0.8),
    "body.frontal_area_m2": (1.0, 4.0),
    "body.crr": (0.004, 0.03),
    "body.wheel_radius_m": (0.2, 0.45),
    "body.wheel_inertia_kgm2": (0.1, 3.0),
    "body.driven_axle_share": (0.3, 0.8),
    "body.tyre_mu": (0.3, 1.3),
    "driveline.final_drive": (1.5, 15.0),
    "driveline.efficiency": (0.7, 1.0),
    "environment.ambient_c": (-30, 45),
    "environment.air_density_kg_m3": (0.9, 1.4),
    "electrical.accessory_w": (0, 2000),
    "meter.odometer_km": (0, 999999),
}
_ICE = {
    "engine.displacement_l": (0.3, 3.0),
    "engine.cylinders": (1, 8),
    "engine.idle_rpm": (500, 1200),
    "engine.max_rpm": (4000, 10000),
    "engine.torque_curve_rpm": (0, 12000),
    "engine.torque_curve_nm": (0, 600),
    "engine.indicated_efficiency": (0.2, 0.5),
    "engine.fmep_kpa": (0, 400),
    "engine.inertia_kgm2": (0.01, 1.0),
    "engine.fuel_cut_min_rpm": (700, 2500),
    "engine.boost_max_kpa": (0, 200),
    "engine.manifold_min_kpa": (5, 60),
    "engine.fuel_lhv_mj_per_l": (25, 40),
    "engine.fuel_density_kg_per_l": (0.65, 0.85),
    "engine.injector_flow_mg_per_ms": (0.5, 20),
    "engine.injector_dead_time_ms": (0, 2),
    "engine.tank_l": (10, 100),
    "engine.fuel_level_initial_pct": (5, 100),
    "transmission.ratio_low": (1.5, 6.0),
    "transmission.ratio_high": (0.3, 1.5),
    "transmission.efficiency": (0.7, 1.0),
    "transmission.spin_loss_nm": (0, 20),
    "transmission.min_cruise_rpm": (700, 3000),
    "transmission.eco_load": (0.3, 1.0),
    "transmission.lockup_kmh": (0, 40),
    "thermal.heat_capacity_kj_per_k": (5, 200),
    "thermal.heat_to_coolant_fraction": (0.1, 0.5),
    "thermal.loss_w_per_k": (0, 500),
    "thermal.thermostat_c": (60, 110),
    "thermal.cold_friction_factor": (0, 2),
    "thermal.cold_enrichment": (0, 0.5),
    "thermal.fast_idle_rpm": (600, 1800),
    "thermal.coolant_initial_c": (-30, 110),
    "electrical.alternator_efficiency": (0.3, 0.95),
}
_HYBRID = {
    "hybrid.isg_max_power_kw": (0.5, 20),
    "hybrid.isg_max_torque_nm": (5, 200),
    "hybrid.belt_ratio": (1, 4),
    "hybrid.isg_efficiency": (0.5, 0.98),
    "hybrid.pack_capacity_ah": (0.5, 100),
    "hybrid.pack_ocv_empty_v": (8, 60),
    "hybrid.pack_ocv_full_v": (8, 60),
    "hybrid.pack_resistance_ohm": (0.001, 0.5),
    "hybrid.soc_initial_pct": (0, 100),
    "hybrid.soc_min_pct": (0, 100),
    "hybrid.soc_max_pct": (0, 100),
    "hybrid.assist_soc_min_pct": (0, 100),
    "hybrid.assist_min_accel_mps2": (0, 3),
    "hybrid.idle_stop_max_kmh": (0, 30),
    "hybrid.idle_stop_min_coolant_c": (0, 100),
    "hybrid.restart_energy_j": (0, 5000),
}
_EV = {
    "motor.max_power_kw": (5, 500),
    "motor.max_torque_nm": (20, 1000),
    "motor.max_rpm": (3000, 25000),
    "motor.copper_loss_at_max_torque_w": (0, 20000),
    "motor.iron_loss_at_max_rpm_w": (0, 10000),
    "motor.inverter_loss_fraction": (0, 0.2),
    "motor.inverter_fixed_loss_w": (0, 1000),
    "motor.rotor_inertia_kgm2": (0.0, 1.0),
    "motor.gear_drag_nm": (0.0, 10.0),
    "motor.regen_max_power_kw": (0, 300),
    "motor.regen_min_kmh": (0, 30),
    "motor.coast_regen_mps2": (0, 3),
    "motor.regen_brake_share": (0, 1),
    "battery.capacity_kwh": (2, 200),
    "battery.ocv_empty_v": (40, 1000),
    "battery.ocv_full_v": (40, 1000),
    "battery.resistance_ohm": (0.005, 2),
    "battery.soc_initial_pct": (0, 100),
    "battery.charger_efficiency": (0.5, 1.0),
}
_ICE_OPTIONAL = {"engine.boost_max_kpa"}


@dataclass
class Vehicle:
    name: str
    path: Path
    data: dict

    @property
    def powertrain(self) -> str:
        return self.data["powertrain"]

    @property
    def description(self) -> str:
        return self.data.get("description", "")

    @property
    def dbc(self) -> str:
        return self.data["dbc"]

    @property
    def test_mass_kg(self) -> float:
        return self.p("body.curb_mass_kg") + self.p("body.test_load_kg")

    def p(self, key: str):
        node = self.data
        for part in key.split("."):
            node = node[part]
        return node


def _vehicles_dir() -> Path:
    return resources_dir() / "vehicles"


def list_vehicles() -> list[str]:
    """Names of the bundled presets."""
    return sorted(p.stem for p in _vehicles_dir().glob("*.toml"))


def _check(data: dict, path: Path, schema: dict, optional=frozenset()) -> None:
    for key, (lo, hi) in schema.items():
        node = data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if key in optional:
                    node = None
                    break
                raise KeidriveError(f"{path}: missing parameter {key}")
            node = node[part]
        if node is None:
            continue
        values = node if isinstance(node, list) else [node]
        if isinstance(node, list) and not node:
            raise KeidriveError(f"{path}: parameter {key} is an empty list")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise KeidriveError(f"{path}: parameter {key} = {v!r} is not a number")
            if not lo <= v <= hi:
                raise KeidriveError(f"{path}: parameter {key} = {v} out of range [{lo}, {hi}]")


def _validate(data: dict, path: Path) -> None:
    for key in ("name", "dbc", "powertrain"):
        if key not in data:
            raise KeidriveError(f"{path}: missing parameter {key}")
    if data["powertrain"] not in POWERTRAINS:
        raise KeidriveError(f"{path}: parameter powertrain = {data['powertrain']!r} must be one of {', '.join(POWERTRAINS)}")
    _check(data, path, _COMMON)
    if data["powertrain"] in ("ice", "mild_hybrid"):
        _check(data, path, _ICE, _ICE_OPTIONAL)
        rpm, nm = data["engine"]["torque_curve_rpm"], data["engine"]["torque_curve_nm"]
        if len(rpm) != len(nm) or len(rpm) < 2:
            raise KeidriveError(f"{path}: parameter engine.torque_curve_rpm and engine.torque_curve_nm need the same length (>= 2)")
        if any(b <= a for a, b in zip(rpm, rpm[1:])):
            raise KeidriveError(f"{path}: parameter engine.torque_curve_rpm must increase")
        if len(data["engine"]["fmep_kpa"]) != 3:
            raise KeidriveError(f"{path}: parameter engine.fmep_kpa needs three coefficients [a, b, c]")
        if data["transmission"]["ratio_high"] >= data["transmission"]["ratio_low"]:
            raise KeidriveError(f"{path}: parameter transmission.ratio_high must be below transmission.ratio_low")
    if data["powertrain"] == "mild_hybrid":
        _check(data, path, _HYBRID)
    if data["powertrain"] == "ev":
        _check(data, path, _EV)
    dbc = data["dbc"]
    from ..paths import dbc_dir
    if not (dbc_dir() / dbc).is_file() and not (path.parent / dbc).is_file():
        raise KeidriveError(f"{path}: parameter dbc = {dbc!r}: no such DBC in {dbc_dir()}")


def load_vehicle(name_or_path) -> Vehicle:
    """A bundled preset by name, or a TOML file by path."""
    if isinstance(name_or_path, Vehicle):
        return name_or_path
    text = str(name_or_path)
    names = list_vehicles()
    if text in names:
        path = _vehicles_dir() / f"{text}.toml"
    elif isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text:
        path = Path(text)
    else:
        raise KeidriveError(f"{text}: no such vehicle{did_you_mean(text, names)} (valid vehicles: {', '.join(names)}, "
                            "or a path to a .toml file)", option="vehicle")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise KeidriveError(f"cannot read vehicle file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise KeidriveError(f"{path}: not valid TOML: {e}") from None
    _validate(data, path)
    return Vehicle(str(data["name"]), path, data)
