"""`keidrive config`: the device config on a board (or in a local file),
validated with the firmware's own schema (firmware/keifw/config.py) before
anything is written."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import KeidriveError, did_you_mean
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
    elif kind == "text" and text.lower() in ("null", "none"):
        value = None
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
        from ..sim import list_vehicles

        hint = did_you_mean(name, [*schema_module().VEHICLES, *list_vehicles()])
        raise KeidriveError(f"unknown vehicle {name!r}{hint}: a decoder module ({choices}) or a vehicle preset")
    return module


def describe(config: dict) -> list[str]:
    """Every key: its value, marked when it is the default."""
    schema = schema_module()
    effective, errors = schema.validate(config)
    lines = []
    for key, (kind, default, _rule, text) in schema.SCHEMA.items():
        value = schema.masked(key, effective[key])  # a secret is never shown
        mark = "" if key in config else "  (default)"
        lines.append(f"{key} = {json.dumps(value)}{mark}")
    for message in errors:
        lines.append(f"# the firmware would log: {message}")
    return lines


def parse_config(text: str, where: str) -> dict:
    """A config JSON object; one clear error for bad JSON, another type, or
    a number that is not finite (``1e999``, ``NaN``: the firmware would
    drop the whole file), naming its key."""
    import math

    try:
        # Python reads Infinity/NaN and overflows 1e999 to inf; the
        # firmware's JSON does neither: catch them here, by key.
        obj = json.loads(text, parse_constant=float)
    except ValueError as error:
        raise KeidriveError(f"config {where} is not valid JSON: {error}") from None
    if not isinstance(obj, dict):
        raise KeidriveError(f"config {where} is not a JSON object")
    for key, value in obj.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise KeidriveError(f"config {where}: {key} = {value} is not a finite number")
    return obj


def read_local(path: str, missing_ok: bool = False) -> dict:
    """The config in a local file ({} for a file that does not exist yet, when ``missing_ok``)."""
    p = Path(path)
    if not p.exists():
        if missing_ok:
            return {}
        raise KeidriveError(f"no such config file {path}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise KeidriveError(f"cannot read config {path}: {error}") from None
    return parse_config(text, path)


def check_writable(path: str) -> None:
    """Before anything is read or changed: the file can be written where it is."""
    import os

    p = Path(path)
    parent = p.parent
    if not parent.is_dir():
        raise KeidriveError(f"cannot write config {path}: directory {parent} does not exist")
    if p.is_dir():
        raise KeidriveError(f"cannot write config {path}: is a directory")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise KeidriveError(f"cannot write config {path}: permission denied")


def write_local(path: str, config: dict) -> None:
    from .deploy import config_bytes

    p = Path(path)
    tmp = p.with_name(p.name + ".kdnew")
    try:
        tmp.write_bytes(config_bytes(config))
        tmp.replace(p)
    except OSError as error:
        raise KeidriveError(f"cannot write config {path}: {error.strerror}") from None
