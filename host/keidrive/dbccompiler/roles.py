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

The compile then emits only the messages the roles name (and, with
``--node``, the messages that node sends), with filters for them, and the
module carries ``ROLES`` and ``ROLE_UNITS``. The role names are the
firmware's own (``keifw/vehicle.py``).
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KeidriveError, did_you_mean
from . import checksum

# Unit strings a role's value may be stated in, as DBCs spell them.
UNITS = ("km/h", "kph", "mph", "m/s", "rpm", "%", "fraction", "L/h", "mL/s", "kPa", "degC", "V", "A", "bool")


@dataclass
class RolesFile:
    path: Path
    roles: dict[str, str]                                   # role -> "MESSAGE.Signal"
    units: dict[str, str] = field(default_factory=dict)     # role -> unit, overriding the DBC's
    checksums: dict[str, str] = field(default_factory=dict)  # message -> algorithm name
    counters: dict[str, str] = field(default_factory=dict)   # message -> its COUNTER signal

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
    unknown_tables = sorted(set(document) - {"roles", "units", "checksum", "counter"})
    if unknown_tables:
        raise KeidriveError(
            f"{path}: unknown table [{unknown_tables[0]}] (valid: [roles], [units], [checksum], [counter])"
        )
    roles, units, checksums, counters = (
        _table(document, name, path) for name in ("roles", "units", "checksum", "counter")
    )
    if not roles:
        raise KeidriveError(f"{path}: [roles] names no role")
    known = firmware_roles()
    for role in list(roles) + list(units):
        if role not in known:
            raise KeidriveError(f"{path}: unknown role {role!r}{did_you_mean(role, known)} (valid: {', '.join(known)})")
    for role, target in roles.items():
        if target.count(".") < 1 or not all(target.split(".", 1)):
            raise KeidriveError(f"{path}: role {role} = {target!r} is not \"MESSAGE.Signal\"")
    for role, unit in units.items():
        if role not in roles:
            raise KeidriveError(f"{path}: [units] {role} is not in [roles]")
        if unit not in UNITS:
            raise KeidriveError(f"{path}: [units] {role} = {unit!r} is not a known unit (valid: {', '.join(UNITS)})")
    role_messages = {target.split(".", 1)[0] for target in roles.values()}
    for name, table in (("checksum", checksums), ("counter", counters)):
        for message in table:
            if message not in role_messages:
                raise KeidriveError(f"{path}: [{name}] {message} is not a message of a role")
    return RolesFile(Path(path), roles, units, {m: checksum.canonical_name(a) for m, a in checksums.items()},
                     counters)
