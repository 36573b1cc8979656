"""Loading DBC files with cantools and checking they fit the generated code.

Everything the code generator needs is copied into small plain dataclasses
here, so a DBC feature the generator cannot express is refused in one place,
with a message naming the file, message and signal.
"""

import hashlib
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cantools

from ..errors import KeidriveError
from . import checksum

# MicroPython small ints are 31-bit signed on 32-bit boards: raw values that
# fit stay in one slot, wider ones are split into 16-bit limbs.
MAX_UNSIGNED_SLOT_BITS = 30
MAX_SIGNED_SLOT_BITS = 31
LIMB_BITS = 16
MAX_SIGNAL_BITS = 64
MAX_CLASSIC_CAN_BYTES = 8
EXTENDED_KEY_FLAG = 0x20000000

# Signals found by name: COUNTER and CHECKSUM roles are a naming convention of
# our DBCs ("Counter", "ENG_Counter", "Checksum", "ENG_Checksum"...).
COUNTER_NAME = re.compile(r"(^|_)(COUNTER|ALIVE_?COUNTER)$", re.IGNORECASE)
CHECKSUM_NAME = re.compile(r"(^|_)CHECKSUM$", re.IGNORECASE)


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
    checksum_algorithm: str = checksum.NO_CHECKSUM
    multiplexer: SignalSpec | None = None
    counter: SignalSpec | None = None
    checksum: SignalSpec | None = None
    index: int = -1
    mux_pages: dict[int, list[SignalSpec]] = field(default_factory=dict)

    @property
    def key(self) -> int:
        return self.frame_id | EXTENDED_KEY_FLAG if self.extended else self.frame_id

    @property
    def unconditional_signals(self) -> list[SignalSpec]:
        return [signal for signal in self.signals if signal.multiplexer_ids is None]

    @property
    def checksum_byte(self) -> int:
        return self.checksum.start // 8 if self.checksum else -1


@dataclass
class LoadedDbc:
    path: Path
    database: cantools.database.can.Database
    sha256: str


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_dbc(path: Path) -> LoadedDbc:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise KeidriveError(f"{path}: no such file") from None
    except OSError as error:
        raise KeidriveError(f"{path}: cannot read: {error.strerror}") from None
    try:
        database = cantools.database.load_string(content.decode("cp1252"), database_format="dbc")
    except Exception as error:  # cantools raises several unrelated types for bad input
        raise KeidriveError(f"{path}: cantools rejects this DBC: {one_line(error)}") from None
    return LoadedDbc(path, database, hashlib.sha256(content).hexdigest())


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
            raise KeidriveError(
                f"{loaded.path.name}: message {message.name}: attribute {name} is {value}, "
                f"not one of its {len(definition.choices)} choices"
            )
        return definition.choices[value]
    return value


def _signal_spec(where: str, signal) -> SignalSpec:
    if signal.is_float:
        raise KeidriveError(f"{where}.{signal.name}: IEEE float signals are not supported")
    if signal.length > MAX_SIGNAL_BITS:
        raise KeidriveError(f"{where}.{signal.name}: {signal.length}-bit signals are not supported (max 64)")
    for what, number in (("scale", signal.scale), ("offset", signal.offset)):
        if not math.isfinite(number):
            raise KeidriveError(f"{where}.{signal.name}: {what} {number} is not a finite number")
    return SignalSpec(
        name=signal.name,
        start=signal.start,
        length=signal.length,
        byte_order=signal.byte_order,
        is_signed=signal.is_signed,
        scale=exact(signal.scale),
        offset=exact(signal.offset),
        minimum=signal.minimum,
        maximum=signal.maximum,
        multiplexer_ids=tuple(signal.multiplexer_ids) if signal.multiplexer_ids is not None else None,
        is_multiplexer=signal.is_multiplexer,
    )


def _role_signal(where: str, signals: list[SignalSpec], pattern: re.Pattern, role: str) -> SignalSpec | None:
    found = [signal for signal in signals if pattern.search(signal.name)]
    if len(found) > 1:
        names = ", ".join(signal.name for signal in found)
        raise KeidriveError(f"{where}: more than one {role} signal ({names})")
    return found[0] if found else None


def message_spec(loaded: LoadedDbc, message, tx: bool, rx: bool) -> MessageSpec:
    where = f"{loaded.path}: message {message.name}"
    if message.is_fd or message.length > MAX_CLASSIC_CAN_BYTES:
        raise KeidriveError(f"{where}: {message.length}-byte CAN FD frames are not supported (classic CAN, max 8 bytes)")
    if message.is_container:
        raise KeidriveError(f"{where}: container messages are not supported")
    signals = [_signal_spec(where, signal) for signal in message.signals]
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
    _check_multiplexing(where, spec)
    _check_counter_and_checksum(where, loaded, message, spec)
    return spec


def _check_multiplexing(where: str, spec: MessageSpec) -> None:
    multiplexers = [signal for signal in spec.signals if signal.is_multiplexer]
    if len(multiplexers) > 1 or any(signal.is_multiplexer and signal.multiplexer_ids for signal in spec.signals):
        raise KeidriveError(f"{where}: nested or multiple multiplexers are not supported")
    if not multiplexers:
        return
    spec.multiplexer = multiplexers[0]
    if spec.multiplexer.is_signed or spec.multiplexer.n_limbs != 1:
        raise KeidriveError(
            f"{where}.{spec.multiplexer.name}: a multiplexer must be unsigned and at most 30 bits"
        )
    for signal in spec.signals:
        for mux_value in signal.multiplexer_ids or ():
            spec.mux_pages.setdefault(mux_value, []).append(signal)


def _check_counter_and_checksum(where: str, loaded: LoadedDbc, message, spec: MessageSpec) -> None:
    counter = _role_signal(where, spec.signals, COUNTER_NAME, "COUNTER")
    if counter is not None:
        if counter.is_signed or counter.length > MAX_UNSIGNED_SLOT_BITS or counter.multiplexer_ids is not None:
            raise KeidriveError(
                f"{where}.{counter.name}: a COUNTER must be an unsigned, unmultiplexed signal of at most 30 bits"
            )
        spec.counter = counter
    algorithm = message_attribute(loaded, message, checksum.ATTRIBUTE) or checksum.NO_CHECKSUM
    if algorithm == checksum.NO_CHECKSUM:
        return
    if algorithm not in checksum.ALGORITHMS:
        known = ", ".join(checksum.ALGORITHMS)
        raise KeidriveError(f"{where}: unknown {checksum.ATTRIBUTE} {algorithm!r} (supported: {known})")
    signal = _role_signal(where, spec.signals, CHECKSUM_NAME, "CHECKSUM")
    if signal is None:
        raise KeidriveError(f"{where}: {checksum.ATTRIBUTE} is {algorithm} but no signal is named *CHECKSUM")
    # An 8-bit byte-aligned field reads the same in Intel and Motorola order.
    byte_aligned = signal.start % 8 == (0 if signal.byte_order == "little_endian" else 7)
    if signal.length != 8 or not byte_aligned or signal.is_signed or signal.multiplexer_ids is not None:
        raise KeidriveError(
            f"{where}.{signal.name}: a CHECKSUM must be an unsigned, unmultiplexed 8-bit signal filling one byte"
        )
    if signal.scale != 1 or signal.offset != 0:
        raise KeidriveError(f"{where}.{signal.name}: a CHECKSUM must have scale 1 and offset 0")
    spec.checksum = signal
    spec.checksum_algorithm = algorithm


def node_names(loaded: list[LoadedDbc]) -> list[str]:
    return sorted({node.name for dbc in loaded for node in dbc.database.nodes})


def select_messages(
    loaded: list[LoadedDbc], node: str | None = None, message_names: list[str] | None = None
) -> list[MessageSpec]:
    """The messages to compile, in a deterministic order, with slots assigned.

    With ``node``: messages it receives any signal of (rx) or sends (tx);
    without: every message, each both decoded and encodable.
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
            candidates.append((dbc, message, tx, rx))
    if message_names is not None:
        unknown = [name for name in message_names if name not in owners]
        if unknown:
            raise KeidriveError(
                f"unknown message {', '.join(unknown)} (valid: {', '.join(sorted(owners))})"
            )
        candidates = [candidate for candidate in candidates if candidate[1].name in message_names]
    specs = [message_spec(dbc, message, tx, rx) for dbc, message, tx, rx in candidates if tx or rx]
    specs.sort(key=lambda spec: (spec.extended, spec.frame_id))
    seen_keys: dict[int, str] = {}
    for spec in specs:
        if spec.key in seen_keys:
            raise KeidriveError(
                f"messages {seen_keys[spec.key]} and {spec.name} share frame id {spec.frame_id:#x}"
            )
        seen_keys[spec.key] = spec.name
    _assign_slots(specs)
    return specs


def _assign_slots(specs: list[MessageSpec]) -> None:
    next_slot = 0
    for index, spec in enumerate(specs):
        spec.index = index
        for signal in spec.signals:
            signal.slot = next_slot
            next_slot += signal.n_limbs
