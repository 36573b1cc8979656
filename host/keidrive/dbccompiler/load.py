"""Checking the loaded DBCs' messages fit the generated code, and choosing them.

Everything the code generator needs is copied into small plain dataclasses
here, so a DBC feature the generator cannot express is refused in one place.
Refusals are per message: the message is skipped with one warning line
naming it and why, and the rest of the file compiles.
"""

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

from ..errors import KeidriveError
from . import bits, checksum, j1939
from .read import LoadedDbc, one_line

# MicroPython small ints are 31-bit signed on 32-bit boards: raw values that
# fit stay in one slot, wider ones are split into 16-bit limbs.
MAX_UNSIGNED_SLOT_BITS = 30
MAX_SIGNED_SLOT_BITS = 31
LIMB_BITS = 16
MAX_SIGNAL_BITS = 64
MAX_CLASSIC_CAN_BYTES = 8
EXTENDED_KEY_FLAG = 0x20000000
# A frame key matches a message when key & key_mask == the message's key & key_mask: every bit
# but for a J1939 parameter group (j1939.py).
FULL_KEY_MASK = 0x3FFFFFFF

# Signals found by name: COUNTER and CHECKSUM roles are a naming convention of
# our DBCs ("Counter", "ENG_Counter", "Checksum", "ENG_Checksum"...). The
# validity COUNTER is the one COUNTER-like signal of a message; of several,
# the one named exactly COUNTER (any case), else none; a roles file's
# [counter] table names it outright. Every one is decoded.
COUNTER_NAME = re.compile(r"(^|_)(COUNTER|ALIVE_?COUNTER)$", re.IGNORECASE)
EXACT_COUNTER_NAME = "COUNTER"
CHECKSUM_NAME = re.compile(r"(^|_)CHECKSUM$", re.IGNORECASE)


class Refused(Exception):
    """A message the generated code cannot carry; the text says why."""



@dataclass
class SignalSpec:
    name: str
    start: int
    length: int
    byte_order: str
    is_signed: bool
    scale: Fraction
    offset: Fraction
    minimum: float | int | None
    maximum: float | int | None
    multiplexer_ids: tuple[int, ...] | None
    is_multiplexer: bool
    is_float: bool = False
    unit: str = ""
    slot: int = -1

    @property
    def n_limbs(self) -> int:
        """1 for a raw value held in one slot, else the number of 16-bit limbs."""
        limit = MAX_SIGNED_SLOT_BITS if self.is_signed else MAX_UNSIGNED_SLOT_BITS
        if self.length <= limit:
            return 1
        return -(-self.length // LIMB_BITS)

    @property
    def words(self) -> list[tuple[int, int, int]]:
        """(slot, first raw bit, end raw bit) of each slot the signal occupies."""
        if self.n_limbs == 1:
            return [(self.slot, 0, self.length)]
        return [
            (self.slot + k, k * LIMB_BITS, min((k + 1) * LIMB_BITS, self.length))
            for k in range(self.n_limbs)
        ]


@dataclass
class Mux:
    """A multiplexer and its pages: (the values sharing one layout, that layout).

    A layout is a list of SignalSpec and Mux, as cantools' ``signal_tree``:
    a value listed with no signals (a VAL_ choice of the multiplexer) is a
    page with an empty layout, and a multiplexer may itself be multiplexed
    (extended multiplexing, SG_MUL_VAL_).
    """

    signal: SignalSpec
    pages: list[tuple[tuple[int, ...], list]]


@dataclass
class MessageSpec:
    name: str
    frame_id: int
    extended: bool
    length: int
    cycle_ms: int
    source: str
    signals: list[SignalSpec]
    tx: bool
    rx: bool
    layout: list = field(default_factory=list)
    checksum_algorithm: str = checksum.NO_CHECKSUM
    counter: SignalSpec | None = None
    checksum: SignalSpec | None = None
    index: int = -1
    key_mask: int = FULL_KEY_MASK

    @property
    def key(self) -> int:
        return self.frame_id | EXTENDED_KEY_FLAG if self.extended else self.frame_id

    @property
    def match(self) -> tuple[int, int]:
        """(the key's bits that count, mask): what the frames of this message share."""
        return self.key & self.key_mask, self.key_mask

    @property
    def unconditional_signals(self) -> list[SignalSpec]:
        """Signals present whatever any multiplexer says, the top-level multiplexers too."""
        return [item.signal if isinstance(item, Mux) else item for item in self.layout]

    @property
    def checksum_byte(self) -> int:
        return self.checksum.start // 8 if self.checksum else -1


def exact(number: int | float) -> Fraction:
    """The rational the DBC text meant: 0.01 is 1/100, not the binary float's expansion.

    cantools keeps scale/offset as Python floats; repr() of a float is the
    shortest decimal that reads back to it, i.e. the DBC's own text.
    """
    return Fraction(repr(number)) if isinstance(number, float) else Fraction(number)


def message_attribute(loaded: LoadedDbc, message, name: str):
    """A message attribute's value (ENUM index resolved to its name), else the BA_DEF_DEF_ default."""
    definitions = loaded.database.dbc.attribute_definitions if loaded.database.dbc else {}
    definition = definitions.get(name)
    if message.dbc is not None and name in message.dbc.attributes:
        value = message.dbc.attributes[name].value
    elif definition is not None:
        value = definition.default_value
    else:
        return None
    if definition is not None and definition.choices and isinstance(value, int):
        if not 0 <= value < len(definition.choices):
            raise Refused(f"attribute {name} is {value}, not one of its {len(definition.choices)} choices")
        return definition.choices[value]
    return value


def _signal_spec(signal) -> SignalSpec:
    if signal.is_float and signal.length not in (32, 64):
        raise Refused(f"{signal.name}: a {signal.length}-bit IEEE float is neither single nor double")
    if signal.length > MAX_SIGNAL_BITS:
        raise Refused(f"{signal.name}: {signal.length}-bit signals are not supported (max 64)")
    for what, number in (("scale", signal.scale), ("offset", signal.offset)):
        if not math.isfinite(number):
            raise Refused(f"{signal.name}: {what} {number} is not a finite number")
    return SignalSpec(
        name=signal.name,
        start=signal.start,
        length=signal.length,
        byte_order=signal.byte_order,
        # A float's raw value is its IEEE bit pattern, kept unsigned.
        is_signed=signal.is_signed and not signal.is_float,
        scale=exact(signal.scale),
        offset=exact(signal.offset),
        minimum=signal.minimum,
        maximum=signal.maximum,
        multiplexer_ids=tuple(signal.multiplexer_ids) if signal.multiplexer_ids is not None else None,
        is_multiplexer=signal.is_multiplexer,
        is_float=signal.is_float,
        unit=signal.unit or "",
    )


def _role_signals(signals: list[SignalSpec], pattern: re.Pattern) -> list[SignalSpec]:
    return [signal for signal in signals if pattern.search(signal.name)]


def message_spec(loaded: LoadedDbc, message, tx: bool, rx: bool, checksum_override: str | None = None,
                 counter_override: str | None = None, source: int | None = None) -> MessageSpec:
    """The message as the generator sees it; Refused when it cannot be carried.

    ``checksum_override``, ``counter_override``: the CHECKSUM algorithm and
    the COUNTER signal a roles file names for it; ``source``: the J1939
    source address it pins.
    """
    if message.length > MAX_CLASSIC_CAN_BYTES:
        raise Refused(f"{message.length}-byte frame: CAN FD payloads over 8 bytes are not supported (classic CAN)")
    if message.is_container:
        raise Refused("container messages are not supported")
    # An FD-flagged frame of at most 8 bytes decodes as a classic one.
    signals = [_signal_spec(signal) for signal in message.signals]
    for signal in signals:
        # Non-strict loading lets such a signal through; its bits would lie past the frame.
        if max(bits.bytes_covered(signal.start, signal.length, signal.byte_order)) >= message.length:
            raise Refused(f"{signal.name}: does not fit in the {message.length}-byte frame")
    spec = MessageSpec(
        name=message.name,
        frame_id=message.frame_id,
        extended=message.is_extended_frame,
        length=message.length,
        cycle_ms=message.cycle_time or 0,
        source=loaded.path.name,
        signals=signals,
        tx=tx,
        rx=rx,
    )
    if j1939.is_j1939(message):
        spec.key_mask = j1939.key_mask(message.frame_id, source)
        if source is not None:
            spec.frame_id = message.frame_id & ~j1939.SOURCE_MASK | source
    elif source is not None:
        raise KeidriveError(f"{loaded.path.name}: message {message.name}: the roles file pins its J1939 source "
                            "address, but it is no J1939 parameter group (VFrameFormat J1939PG)")
    by_name = {signal.name: signal for signal in signals}
    spec.layout = _layout(message.signal_tree, by_name)
    _check_counter_and_checksum(loaded, message, spec, checksum_override, counter_override)
    return spec


def _layout(tree: list, by_name: dict[str, SignalSpec]) -> list:
    """cantools' signal tree as SignalSpec and Mux items, pages with equal layouts merged."""
    layout = []
    for node in tree:
        if isinstance(node, str):
            layout.append(by_name[node])
            continue
        for name, pages in node.items():
            signal = by_name[name]
            if signal.is_float or signal.n_limbs != 1:
                raise Refused(f"{name}: a multiplexer must be an integer of at most 30 bits (31 signed)")
            merged: dict[str, tuple[list[int], list]] = {}
            for value, subtree in pages.items():
                merged.setdefault(repr(subtree), ([], subtree))[0].append(value)
            layout.append(Mux(signal, [
                (tuple(sorted(values)), _layout(subtree, by_name))
                for values, subtree in sorted(merged.values(), key=lambda page: min(page[0]))
            ]))
    return layout


def _check_counter_and_checksum(loaded: LoadedDbc, message, spec: MessageSpec, checksum_override: str | None,
                                counter_override: str | None) -> None:
    where = f"{loaded.path.name}: message {spec.name}"
    counters = _role_signals(spec.signals, COUNTER_NAME)
    if counter_override is not None:
        counters = [signal for signal in spec.signals if signal.name == counter_override]
        if not counters:
            raise KeidriveError(f"{where}: the roles file's COUNTER {counter_override!r} is no signal of it")
    elif len(counters) > 1:
        exact_name = [signal for signal in counters if signal.name.upper() == EXACT_COUNTER_NAME]
        if not exact_name:
            names = ", ".join(signal.name for signal in counters)
            loaded.warnings.append(
                f"{where}: several COUNTER-like signals ({names}), none named COUNTER: all decoded, none checked"
            )
        counters = exact_name
    if counters:
        counter = counters[0]
        if counter.is_signed or counter.length > MAX_UNSIGNED_SLOT_BITS or counter.multiplexer_ids is not None:
            loaded.warnings.append(f"{where}.{counter.name}: not an unsigned, unmultiplexed signal of at most 30 bits: "
                 "decoded, not checked as a COUNTER")
        else:
            spec.counter = counter
    algorithm = checksum_override or message_attribute(loaded, message, checksum.ATTRIBUTE) or checksum.NO_CHECKSUM
    if algorithm == checksum.NO_CHECKSUM:
        return
    if algorithm not in checksum.ALGORITHMS:
        known = ", ".join(checksum.ALGORITHMS)
        loaded.warnings.append(
            f"{where}: CHECKSUM algorithm {algorithm!r} is not one offered ({known}): frames unchecked"
        )
        return
    method = checksum.ALGORITHMS[algorithm]
    found = _role_signals(spec.signals, CHECKSUM_NAME)
    if len(found) != 1:
        names = ", ".join(signal.name for signal in found) or "none"
        raise Refused(f"CHECKSUM is {algorithm} but not exactly one signal is named *CHECKSUM ({names})")
    signal = found[0]
    # A field in one byte, its low bits: the same in Intel and Motorola order.
    low_aligned = signal.start % 8 == (0 if signal.byte_order == "little_endian" else method.width - 1)
    if signal.length != method.width or not low_aligned or signal.is_signed or signal.multiplexer_ids is not None:
        what = "filling one byte" if method.width == 8 else f"in the low {method.width} bits of a byte"
        raise Refused(f"{signal.name}: a {algorithm} CHECKSUM must be an unsigned, unmultiplexed "
                      f"{method.width}-bit signal {what}")
    if method.last_byte_only and signal.start // 8 != spec.length - 1:
        raise Refused(f"{signal.name}: a {algorithm} CHECKSUM sits in the frame's last byte")
    if signal.scale != 1 or signal.offset != 0:
        raise Refused(f"{signal.name}: a CHECKSUM must have scale 1 and offset 0")
    spec.checksum = signal
    spec.checksum_algorithm = algorithm


def node_names(loaded: list[LoadedDbc]) -> list[str]:
    return sorted({node.name for dbc in loaded for node in dbc.database.nodes})


def select_messages(
    loaded: list[LoadedDbc], node: str | None = None, message_names: list[str] | None = None,
    roles=None,
) -> list[MessageSpec]:
    """The messages to compile, in a deterministic order, with slots assigned.

    With ``node``: messages it receives any signal of (rx) or sends (tx);
    without: every message, each both decoded and encodable. With ``roles``
    (a roles.RolesFile): only the messages the roles name, received, plus
    those ``node`` sends. A message the generated code cannot carry is
    skipped with a warning.
    """
    if node is not None and node not in node_names(loaded):
        raise KeidriveError(f"node {node!r} is in none of the DBCs (nodes: {', '.join(node_names(loaded)) or 'none'})")
    candidates = []
    owners: dict[str, str] = {}
    for dbc in loaded:
        for message in dbc.database.messages:
            if message.name in owners:
                raise KeidriveError(
                    f"message {message.name} is defined in both {owners[message.name]} and {dbc.path.name}"
                )
            owners[message.name] = dbc.path.name
            if node is None:
                tx = rx = True
            else:
                tx = node in message.senders
                rx = any(node in signal.receivers for signal in message.signals)
            if roles is not None:
                rx = message.name in roles.messages
                tx = tx and (node is not None or rx)
            candidates.append((dbc, message, tx, rx))
    if message_names is not None:
        unknown = [name for name in message_names if name not in owners]
        if unknown:
            raise KeidriveError(
                f"unknown message {', '.join(unknown)} (valid: {', '.join(sorted(owners))})"
            )
        candidates = [candidate for candidate in candidates if candidate[1].name in message_names]
    if roles is not None:
        _check_role_targets(loaded, roles)
    specs = []
    for dbc, message, tx, rx in candidates:
        if not (tx or rx):
            continue
        try:
            checksum_override = roles.checksums.get(message.name) if roles is not None else None
            counter_override = roles.counters.get(message.name) if roles is not None else None
            source = roles.sources.get(message.name) if roles is not None else None
            specs.append(message_spec(dbc, message, tx, rx, checksum_override, counter_override, source))
        except Refused as why:
            dbc.warnings.append(f"{dbc.path.name}: message {message.name} skipped: {why}")
            dbc.skipped.append(f"{message.name}: {one_line(why)}")
    if roles is not None:
        compiled = {spec.name for spec in specs}
        for role, target in roles.roles.items():
            name = target.split(".", 1)[0]
            if name not in compiled:
                why = next((entry for dbc in loaded for entry in dbc.skipped if entry.startswith(f"{name}: ")), name)
                raise KeidriveError(f"{roles.path}: role {role} = {target!r}: its message is skipped: {why}")
    if candidates and not specs:
        skipped = [f"{dbc.path.name}: {why}" for dbc in loaded for why in dbc.skipped]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise KeidriveError(f"no message left to compile: every selected message was skipped: {skipped[0]}{more}")
    specs.sort(key=lambda spec: (spec.extended, spec.frame_id))
    seen_keys: dict[tuple[int, int], str] = {}
    for spec in specs:
        if spec.match in seen_keys:
            shared = "parameter group" if spec.key_mask != FULL_KEY_MASK else "frame id"
            raise KeidriveError(
                f"messages {seen_keys[spec.match]} and {spec.name} share {shared} {spec.frame_id:#x}"
            )
        seen_keys[spec.match] = spec.name
    _assign_slots(specs)
    return specs


def _check_role_targets(loaded: list[LoadedDbc], roles) -> None:
    """Every role names a signal that exists."""
    signals = {f"{message.name}.{signal.name}" for dbc in loaded for message in dbc.database.messages
               for signal in message.signals}
    for role, target in roles.roles.items():
        if target not in signals:
            raise KeidriveError(f"{roles.path}: role {role} = {target!r}: no such signal in the DBCs")


def _assign_slots(specs: list[MessageSpec]) -> None:
    next_slot = 0
    for index, spec in enumerate(specs):
        spec.index = index
        for signal in spec.signals:
            signal.slot = next_slot
            next_slot += signal.n_limbs
