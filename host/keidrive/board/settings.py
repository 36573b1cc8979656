"""`keidrive config`: the device config on a board (or in a local file),
validated with the firmware's own schema (firmware/keifw/config.py) before
anything is written."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import KeidriveError
from ..fwconfig import schema_module
from ..paths import firmware_dir

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")


def parse_value(key: str, text: str):
    """The JSON value of ``key`` from command-line text, checked against the schema."""
    schema = schema_module()
    spec = schema.SCHEMA.get(key)
    if spec is None:
        raise KeidriveError(f"unknown config key {key!r}: one of {', '.join(schema.SCHEMA)}")
    kind, _default, rule, _help = spec
    if kind == "bool":
        if text.lower() in TRUE:
            value = True
        elif text.lower() in FALSE:
            value = False
        else:
            raise KeidriveError(f"config {key} must be true or false, got {text!r}")
    elif kind == "int":
        if text.lower() in ("null", "none") and len(rule) == 3:
            value = None
        else:
            try:
                value = int(text, 0)
            except ValueError:
                raise KeidriveError(f"config {key} must be an integer, got {text!r}") from None
    else:
        value = text
    message = schema.check(key, value)
    if message is not None:
        raise KeidriveError(message)
    return value


def resolve_vehicle(name: str) -> str:
    """A decoder module name (kei_turbo_660) from itself, a preset (nbox-turbo) or a vehicle TOML."""
    stem = Path(name).stem
    if (firmware_dir() / "keifw" / "vehicles" / f"{stem}.py").is_file():
        return stem
    try:
        from .. import sim

        module = Path(sim.load_vehicle(name).dbc).stem
    except (KeidriveError, OSError, ValueError, KeyError):
        module = None
    choices = ", ".join(schema_module().VEHICLES)
    if module is None or module not in schema_module().VEHICLES:
        raise KeidriveError(f"unknown vehicle {name!r}: a decoder module ({choices}) or a vehicle preset")
    return module


def describe(config: dict) -> list[str]:
    """Every key: its value, marked when it is the default."""
    schema = schema_module()
    effective, errors = schema.validate(config)
    lines = []
    for key, (kind, default, _rule, text) in schema.SCHEMA.items():
        value = effective[key]
        mark = "" if key in config else "  (default)"
        lines.append(f"{key} = {json.dumps(value)}{mark}")
    for message in errors:
        lines.append(f"# the firmware would log: {message}")
    return lines


def read_local(path: str) -> dict:
    p = Path(path)
    if not p.exists():
        return {}
    try:
        obj = json.loads(p.read_text())
    except (OSError, ValueError) as error:
        raise KeidriveError(f"cannot read config {path}: {error}") from None
    if not isinstance(obj, dict):
        raise KeidriveError(f"config {path} is not a JSON object")
    return obj


def write_local(path: str, config: dict) -> None:
    from .deploy import config_bytes

    p = Path(path)
    tmp = p.with_name(p.name + ".kdnew")
    tmp.write_bytes(config_bytes(config))
    tmp.replace(p)
