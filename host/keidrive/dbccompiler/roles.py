"""The roles file: which signal of a DBC plays which firmware role (``--roles ROLES.toml``).

    [roles]
    speed = "SPEED.SPEED"                 # "MESSAGE.Signal"
    pedal = "GAS_PEDAL.GAS_PEDAL"
    [units]
    pedal = "fraction"                    # where the DBC's unit string does not say
    [checksum]
    SPEED = "toyota"                      # per message, where the DBC has no ChecksumAlgorithm
    [counter]
    SPEED = "ALIVE"                       # per message: the validity COUNTER, where the name rule
                                          # (load.py) does not find it
    [tyre]
    radius_m = 0.279                      # or circumference_m: for wheel speeds in rad/s or rpm
    [source]
    EEC1 = 0                              # per J1939 message: only frames from this source address

The compile then emits only the messages the roles name (and, with
``--node``, the messages that node sends), with filters for them, and the
module carries ``ROLES`` and ``ROLE_UNITS``. The role names are the
firmware's own (``keifw/vehicle.py``).
"""

import math
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import KeidriveError, did_you_mean
from . import checksum, units
from .units import Tyre


@dataclass
class RolesFile:
    path: Path
    roles: dict[str, str]                                   # role -> "MESSAGE.Signal"
    units: dict[str, str] = field(default_factory=dict)     # role -> unit, overriding the DBC's
    checksums: dict[str, str] = field(default_factory=dict)  # message -> algorithm name
    counters: dict[str, str] = field(default_factory=dict)   # message -> its COUNTER signal
    tyre: Tyre | None = None
    sources: dict[str, int] = field(default_factory=dict)    # J1939 message -> source address

    @property
    def messages(self) -> set[str]:
        return {target.split(".", 1)[0] for target in self.roles.values()}


def firmware_roles() -> tuple[str, ...]:
    """The roles the firmware looks up, from its own table."""
    from . import import_firmware_module

    return tuple(import_firmware_module("keifw.vehicle").ROLE_NAMES)


def _table(document: dict, name: str, path: Path) -> dict:
    table = document.get(name, {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise KeidriveError(f"{path}: [{name}] must be a table of strings")
    return table


def load_roles(path: Path) -> RolesFile:
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeidriveError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KeidriveError(f"{path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise KeidriveError(f"{path}: not valid TOML: {error}") from None
    unknown_tables = sorted(set(document) - {"roles", "units", "checksum", "counter", "tyre", "source"})
    if unknown_tables:
        raise KeidriveError(f"{path}: unknown table [{unknown_tables[0]}] "
                            "(valid: [roles], [units], [checksum], [counter], [tyre], [source])")
    roles, stated, checksums, counters = (
        _table(document, name, path) for name in ("roles", "units", "checksum", "counter")
    )
    if not roles:
        raise KeidriveError(f"{path}: [roles] names no role")
    known = firmware_roles()
    for role in list(roles) + list(stated):
        if role not in known:
            raise KeidriveError(f"{path}: unknown role {role!r}{did_you_mean(role, known)} (valid: {', '.join(known)})")
    for role, target in roles.items():
        if target.count(".") < 1 or not all(target.split(".", 1)):
            raise KeidriveError(f"{path}: role {role} = {target!r} is not \"MESSAGE.Signal\"")
    tyre = _tyre(document.get("tyre"), path)
    for role, unit in stated.items():
        if role not in roles:
            raise KeidriveError(f"{path}: [units] {role} is not in [roles]")
        try:
            known = units.factor(role, unit, tyre) is not None
        except KeidriveError as error:
            raise KeidriveError(f"{path}: [units] {role} = {unit!r}: {error}") from None
        if not known:
            raise KeidriveError(f"{path}: [units] {role} = {unit!r} is not a known unit of "
                                f"{units.ROLE_QUANTITY[role]} (valid: {', '.join(units.spellings(role))})")
    role_messages = {target.split(".", 1)[0] for target in roles.values()}
    sources = document.get("source", {})
    if not isinstance(sources, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 253 for v in sources.values()):
        raise KeidriveError(f"{path}: [source] must map messages to J1939 source addresses 0 to 253")
    for name, table in (("checksum", checksums), ("counter", counters), ("source", sources)):
        for message in table:
            if message not in role_messages:
                raise KeidriveError(f"{path}: [{name}] {message} is not a message of a role")
    return RolesFile(Path(path), roles, stated, {m: checksum.canonical_name(a) for m, a in checksums.items()},
                     counters, tyre, sources)


def _tyre(table, path: Path) -> Tyre | None:
    """[tyre]: radius_m or circumference_m, a length in metres (exact as written)."""
    if table is None:
        return None
    if not isinstance(table, dict) or len(table) != 1 or not set(table) <= {"radius_m", "circumference_m"}:
        raise KeidriveError(f"{path}: [tyre] must hold one of radius_m or circumference_m")
    (name, value), = table.items()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise KeidriveError(f"{path}: [tyre] {name} = {value!r} is not a length in metres above 0")
    return Tyre(**{name: Fraction(repr(value)) if isinstance(value, float) else Fraction(value)})
