"""Bring your own DBC: a preset's drive on a bus in another DBC's format.

``keidrive run --vehicle PRESET --dbc DBC --roles ROLES.toml``: the DBC is
compiled with its roles file into a temporary copy of the firmware tree (the
firmware loads that vehicle module), and the simulator's traffic is carried
into the DBC's format role by role: each role signal of the preset's own DBC
(its roles file ``dbc/<name>.toml``) is decoded from the simulated frames,
converted into the unit the other DBC states, and encoded into the message
the roles file names, at the cadence of the frames it came from; the other
signals of that message keep their initial values, a signal named COUNTER
counts and a CHECKSUM is filled by the algorithm the DBC or the roles file
names (sim/frames.py's codec). A role the DBC lacks is reported as a figure
that cannot be computed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cantools
import numpy as np

from ..dbccompiler import compile_dbc, units, write_module
from ..dbccompiler.read import load_dbc
from ..dbccompiler.roles import RolesFile, load_roles
from ..errors import KeidriveError
from ..paths import dbc_dir, firmware_dir
from ..sim.frames import MessageCodec

# figures that need a role, for the line naming what cannot be computed
_FIGURE_ROLES = {"fuel": ("fuel_rate",), "eco score": ("pedal",), "rpm warnings": ("rpm",)}


def build_tree(dbc: Path, roles_path: Path, folder: Path) -> tuple[Path, str, RolesFile]:
    """A firmware tree in ``folder`` whose vehicle module is ``dbc`` compiled with its roles;
    (tree, vehicle module name, roles)."""
    roles = load_roles(roles_path)
    text = compile_dbc([dbc], roles_path=roles_path, warn=False)
    tree = folder / "firmware"
    shutil.copytree(firmware_dir(), tree, ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    # an ASCII identifier whatever the file is called: MicroPython's lexer takes no other
    name = "byo_" + "".join(c if c.isascii() and c.isalnum() else "_" for c in dbc.stem)
    write_module(text, tree / "keifw" / "vehicles" / f"{name}.py")
    # the copy's config accepts the module as its vehicle (the bundled firmware knows its own three)
    config = tree / "keifw" / "config.py"
    source = config.read_text(encoding="utf-8")
    if "\nVEHICLES = (" not in source:
        raise KeidriveError(f"{config}: no VEHICLES tuple to add the vehicle module {name} to")
    config.write_text(source.replace("\nVEHICLES = (", f"\nVEHICLES = ({name!r}, ", 1), encoding="utf-8")
    return tree, name, roles


def missing_figures(roles_path: Path) -> list[str]:
    """A line for each figure the roles file gives the firmware no signal for."""
    roles = load_roles(roles_path).roles
    return [f"{figure} cannot be computed: {Path(roles_path).name} names no signal for it"
            for figure, needed in _FIGURE_ROLES.items() if not all(role in roles for role in needed)]


def _decode(frames: dict, source, signal_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, physical values) of one signal of the preset's DBC in the simulated frames."""
    mask = (frames["arbitration_id"] == source.frame_id) & (frames["is_extended"] == source.is_extended_frame)
    sig = next(s for s in MessageCodec(source).signals if s.name == signal_name)
    data = frames["data"][mask].astype(np.uint64)
    le = np.zeros(len(data), np.uint64)
    be = np.zeros(len(data), np.uint64)
    for i in range(8):
        le |= data[:, i] << np.uint64(8 * i)
        be |= data[:, i] << np.uint64(8 * (7 - i))
    raw = (((be if sig.big else le) >> np.uint64(sig.shift)) & np.uint64(sig.mask)).astype(np.int64)
    if sig.signed:
        raw = np.where(raw >> (sig.length - 1), raw - (1 << sig.length), raw)
    return frames["timestamp"][mask], raw * sig.scale + sig.offset


def require_drivable(vehicle, roles: RolesFile, dbc: Path) -> RolesFile:
    """The preset's own roles, when they hold a signal for every role ``roles``
    names (the simulator drives ``dbc``'s signals with them); else one clear error."""
    own_roles = load_roles((dbc_dir() / vehicle.dbc).with_suffix(".toml"))
    for role, where in roles.roles.items():
        if role not in own_roles.roles:
            raise KeidriveError(
                f"{Path(dbc).name}: role {role} ({where}): the preset {vehicle.name} has no such signal to drive it with"
            )
    return own_roles


def translate(result, dbc: Path, roles: RolesFile) -> dict:
    """The simulated drive's frames in ``dbc``'s format: frame arrays for record.from_frames."""
    own_dbc = dbc_dir() / result.vehicle.dbc
    own_roles = require_drivable(result.vehicle, roles, dbc)
    own = cantools.database.load_file(str(own_dbc), strict=False)
    target = load_dbc(Path(dbc)).database
    by_message: dict[str, list[tuple[str, str]]] = {}
    for role, where in roles.roles.items():
        message, signal = where.split(".", 1)
        by_message.setdefault(message, []).append((role, signal))
    parts = []
    for message_name, role_signals in by_message.items():
        message = target.get_message_by_name(message_name)
        codec = MessageCodec(message, roles.checksums.get(message_name))
        series = []
        for role, signal in role_signals:
            own_message, own_signal = own_roles.roles[role].split(".", 1)
            t, value = _decode(result.frames, own.get_message_by_name(own_message), own_signal)
            unit = roles.units.get(role) or message.get_signal_by_name(signal).unit or ""
            # the simulator states what the firmware computes in (km/h, %, L/h...): the DBC's unit from it
            series.append((signal, t, value / float(units.factor(role, unit, roles.tyre) or 1)))
        stamps = series[0][1]
        if len(stamps) == 0:
            continue
        values = {}
        for signal, t, value in series:  # sample and hold onto the first role's cadence
            index = np.clip(np.searchsorted(t, stamps, side="right") - 1, 0, len(t) - 1)
            values[signal] = value[index]
        counter = roles.counters.get(message_name)
        if counter is not None:
            codec.counter = next(s for s in codec.signals if s.name == counter)
            codec.value_signals = [s for s in codec.signals if s is not codec.counter]
        data = codec.encode(values, np.arange(len(stamps)))
        n = len(stamps)
        padded = np.zeros((n, 8), np.uint8)
        padded[:, : data.shape[1]] = data
        parts.append((stamps, np.full(n, message.frame_id, np.uint32), np.full(n, message.is_extended_frame),
                      np.full(n, message.length, np.uint8), padded))
    if not parts:
        raise KeidriveError(f"{dbc.name}: none of the roles' messages carries a value in this drive")
    stamps = np.concatenate([p[0] for p in parts])
    order = np.argsort(stamps, kind="stable")
    return {
        "timestamp": stamps[order],
        "arbitration_id": np.concatenate([p[1] for p in parts])[order],
        "is_extended": np.concatenate([p[2] for p in parts])[order],
        "dlc": np.concatenate([p[3] for p in parts])[order],
        "data": np.concatenate([p[4] for p in parts])[order],
    }
