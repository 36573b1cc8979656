"""The generated module's tables: header, messages, slots, filters, checksums, roles.

Literals only (tuples, bytes, dicts), read by the two generated viper
functions, the shared runtime keifw/dbcrt.py and the firmware.
"""

from ..errors import KeidriveError
from . import checksum, units
from .filters import DEFAULT_MAX_FILTERS, SearchWork, machine_can_filters, mcp2515_filters
from .load import FULL_KEY_MASK, MessageSpec, Mux
from .read import LoadedDbc

# machine.CAN.FLAG_EXT_ID (extmod/machine_can_port.h: RTR is bit 0, EXT_ID bit 1).
MACHINE_CAN_FLAG_EXT_ID = 2

IMPORTS = """\
from keifw import dbcrt  # first: on CPython, keifw stands in for the micropython module
import micropython
from micropython import const
"""

API_DOC = '''\
"""Decoders/encoders for the messages listed in MSG_NAMES.

Raw signal values live in an array of N_SLOTS 32-bit ints (new_values());
SLOT["MESSAGE.Signal"] is a signal's slot. A signal of up to 30 bits
(unsigned) or 31 bits (signed) holds its raw value in one slot; a wider one
(an IEEE float too: its bit pattern) holds SLOT_LIMBS[slot] 16-bit unsigned
limbs of its raw two's-complement bits, least significant first, in
consecutive slots (raw_value() joins them).
physical = raw * SCALE_NUM/SCALE_DEN + OFFSET_NUM/OFFSET_DEN.

decode_at(msg_index, buf, offset, values) -> 0, -1 on a CHECKSUM mismatch
(nothing decoded) or -2 (no such message): check and decode in one call,
the caller having looked up the index and checked the DLC; decode_at(~i, ...)
decodes without the check. dispatch(frame_key(id, extended), data, dlc,
values) -> message index, -1 (unknown id) or -2 (wrong DLC). The rest
(encode, checksum, decode, ...) is the shared runtime keifw/dbcrt.py.
"""
'''


def comment(text) -> str:
    """``text`` safe inside a ``#`` comment: every character that is not printable (line breaks of
    any kind, NUL, a lone surrogate from an undecodable file name...) as its escape. Names a user
    gives (files, messages, signals, nodes) reach the module only through this or ``repr``."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in str(text))


def _literal(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _tuple_lines(name: str, items: list, per_line: int = 12, formatter=_literal) -> list[str]:
    if not items:
        return [f"{name} = ()"]
    lines = [f"{name} = ("]
    for start in range(0, len(items), per_line):
        lines.append("    " + " ".join(formatter(item) + "," for item in items[start : start + per_line]))
    lines.append(")")
    return lines


def _bytes_lines(name: str, items: list[int], per_line: int = 32) -> list[str]:
    """A table of values 0..255 as a bytes literal: one byte each on the board, not a pointer."""
    if not items:
        return [f'{name} = b""']
    rows = ['b"' + "".join(f"\\x{int(v):02x}" for v in items[k : k + per_line]) + '"'
            for k in range(0, len(items), per_line)]
    if len(rows) == 1:
        return [f"{name} = {rows[0]}"]
    return [f"{name} = ("] + [f"    {row}" for row in rows] + [")"]


def _layout_literal(layout: list) -> str:
    """(slots present, ((multiplexer slot, ((page values, page layout), ...)), ...))."""
    slots = tuple(item.signal.slot if isinstance(item, Mux) else item.slot for item in layout)
    muxes = []
    for item in layout:
        if isinstance(item, Mux):
            pages = [f"({_literal(values)}, {_layout_literal(page)})" for values, page in item.pages]
            muxes.append(f"({item.signal.slot}, ({', '.join(pages)}{',' if len(pages) == 1 else ''}))")
    return f"({_literal(slots)}, ({', '.join(muxes)}{',' if len(muxes) == 1 else ''}))"


class TableWriter:
    def __init__(self, loaded: list[LoadedDbc], messages: list[MessageSpec], options: str,
                 max_filters: int = DEFAULT_MAX_FILTERS, work: SearchWork | None = None, roles=None):
        self.loaded = loaded
        self.messages = messages
        self.options = options
        self.max_filters = max_filters
        self.work = work or SearchWork()
        self.roles = roles
        self.signals = [signal for message in messages for signal in message.signals]
        self.n_slots = sum(signal.n_limbs for signal in self.signals)
        self.algorithms = sorted({m.checksum_algorithm for m in messages if m.checksum is not None})

    # --- tables -----------------------------------------------------------------

    def _slot_items(self, value_of, continuation) -> list:
        """Per slot: the owner signal's value, ``continuation`` for later limbs."""
        items = []
        for signal in self.signals:
            items.append(value_of(signal))
            items += [continuation] * (signal.n_limbs - 1)
        return items

    def header(self) -> list[str]:
        names = ", ".join(dbc.path.name for dbc in self.loaded)
        lines = [f"# Generated by keidrive dbc compile from {comment(names)} — do not edit."]
        for dbc in self.loaded:
            lines.append(f"# {comment(dbc.path.name)} sha256 {dbc.sha256[:16]}")
            lines += [f"# {comment(dbc.path.name)} imports {comment(name)} sha256 {sha256[:16]}"
                      for name, sha256 in dbc.imports]
        lines.append(f"# Options: {comment(self.options)}")
        lines += [f"# Skipped from {comment(dbc.path.name)}: {comment(why)}"
                  for dbc in self.loaded for why in dbc.skipped]
        return lines + [API_DOC.rstrip("\n"), IMPORTS.rstrip("\n")]

    def message_tables(self) -> list[str]:
        messages = self.messages
        lines = [
            "",
            f"N_SLOTS = const({self.n_slots})",
            f"N_MESSAGES = const({len(messages)})",
            "# Frame keys: the id, with bit 29 set for extended ids (a small int on every board).",
            "EXTENDED_KEY_FLAG = const(0x20000000)",
            "",
        ]
        lines += _tuple_lines("MSG_NAMES", [m.name for m in messages], per_line=4)
        lines += _tuple_lines("MSG_IDS", [m.frame_id for m in messages], per_line=6, formatter=lambda i: f"{i:#x}")
        lines += _bytes_lines("MSG_EXTENDED", [m.extended for m in messages])
        lines += _bytes_lines("MSG_LEN", [m.length for m in messages])
        lines += _tuple_lines("MSG_CYCLE_MS", [m.cycle_ms for m in messages], per_line=20)
        lines += _bytes_lines("MSG_TX", [m.tx for m in messages])
        lines += _bytes_lines("MSG_RX", [m.rx for m in messages])
        lines += _tuple_lines("MSG_COUNTER_SLOT", [m.counter.slot if m.counter else -1 for m in messages], per_line=20)
        lines += _bytes_lines("MSG_COUNTER_BITS", [m.counter.length if m.counter else 0 for m in messages])
        lines += _tuple_lines(
            "MSG_CHECKSUM_SLOT", [m.checksum.slot if m.checksum else -1 for m in messages], per_line=20
        )
        lines += _tuple_lines("MSG_CHECKSUM_BYTE", [m.checksum_byte for m in messages], per_line=20)
        lines += _tuple_lines(
            "MSG_CHECKSUM_ALGORITHM",
            [self.algorithms.index(m.checksum_algorithm) if m.checksum else -1 for m in messages], per_line=20,
        )
        lines.append("# Per message: (slots always present, ((multiplexer slot, ((values, layout), ...)), ...)).")
        lines += _tuple_lines("MSG_LAYOUT", [_layout_literal(m.layout) for m in messages], per_line=1, formatter=str)
        lines.append("MSG_INDEX_BY_NAME = {")
        lines += [f"    {m.name!r}: {m.index}," for m in messages]
        lines.append("}")
        lines.append("MSG_KEY = {")
        lines += [f"    {m.key:#x}: {m.index},  # {comment(m.name)}" for m in messages]
        lines.append("}")
        lines.append("# Per J1939 message index: the key bits its frames share (parameter group, and a pinned")
        lines.append("# source address): a frame key k is the message's when k & mask == MSG_KEY's key & mask.")
        lines.append("MSG_KEY_MASK = {")
        lines += [f"    {m.index}: {m.key_mask:#x},  # {comment(m.name)}"
                  for m in messages if m.key_mask != FULL_KEY_MASK]
        lines.append("}")
        return lines

    def slot_tables(self) -> list[str]:
        lines = ["", "SLOT = {"]
        for message in self.messages:
            lines += [f"    {message.name + '.' + s.name!r}: {s.slot}," for s in message.signals]
        lines.append("}")
        lines.append("# Per slot: 1 = raw value; n > 1 = first of n limbs; 0 = a later limb.")
        lines += _bytes_lines("SLOT_LIMBS", self._slot_items(lambda s: s.n_limbs, 0))
        lines += _bytes_lines("SLOT_BITS", self._slot_items(lambda s: s.length, 0))
        lines += _bytes_lines("SLOT_SIGNED", self._slot_items(lambda s: int(s.is_signed), 0))
        lines += _tuple_lines("SLOT_SIGNAL", self._slot_items(lambda s: s.name, ""))
        lines.append("# IEEE float signals: their slots hold the bit pattern.")
        lines += _tuple_lines("FLOAT_SLOTS", [s.slot for s in self.signals if s.is_float])
        lines.append("# Exact scaling from the DBC's decimal text (0.01 is 1/100).")
        lines += _tuple_lines("SCALE_NUM", self._slot_items(lambda s: s.scale.numerator, 1))
        lines += _tuple_lines("SCALE_DEN", self._slot_items(lambda s: s.scale.denominator, 1))
        lines += _tuple_lines("OFFSET_NUM", self._slot_items(lambda s: s.offset.numerator, 0))
        lines += _tuple_lines("OFFSET_DEN", self._slot_items(lambda s: s.offset.denominator, 1))
        lines.append("# Physical range from the DBC, None where it gives none.")
        lines += _tuple_lines("MIN", self._slot_items(lambda s: s.minimum, None))
        lines += _tuple_lines("MAX", self._slot_items(lambda s: s.maximum, None))
        return lines

    def filter_tables(self) -> list[str]:
        standard = {m.frame_id for m in self.messages if m.rx and not m.extended}
        extended = {m.frame_id for m in self.messages if m.rx and m.extended}
        # J1939 parameter groups: the bits no sender fixes pass whatever they hold
        wide = {m.frame_id: m.key_mask & 0x1FFFFFFF for m in self.messages
                if m.rx and m.key_mask != FULL_KEY_MASK}
        can_filters = machine_can_filters(standard, extended, self.max_filters, self.work, wide)
        masks, mcp_filters = mcp2515_filters(standard, extended, self.work, wide)
        lines = [
            "",
            "# machine.CAN.FLAG_EXT_ID as defined in extmod/machine_can_port.h.",
            f"CAN_FLAG_EXT_ID = const({MACHINE_CAN_FLAG_EXT_ID})",
            f"# machine.CAN.set_filters() items for the received ids, at most {self.max_filters} filters;",
            "# None (receive nothing) when no message is received. Never pass [] (accepts all).",
        ]
        if can_filters is None:
            lines.append("CAN_FILTERS = None")
        else:
            lines.append("CAN_FILTERS = (")
            for f in can_filters:
                flags = "CAN_FLAG_EXT_ID" if f.extended else "0"
                width = 8 if f.extended else 3
                lines.append(f"    (0x{f.id:0{width}x}, 0x{f.mask:0{width}x}, {flags}),")
            lines.append(")")
        lines += [
            "# MCP2515 RXM0, RXM1: (mask, extended). extended: 29-bit SID:EID register value;",
            "# else an 11-bit SID mask whose EID bits must stay 0 (they would match data bytes 0-1).",
            "MCP2515_MASKS = " + _literal(tuple((f"0x{m:x}", e) for m, e in masks)).replace("'", ""),
            "# MCP2515 RXF0-1 (use RXM0), RXF2-5 (use RXM1): (id, extended = EXIDE bit).",
            "MCP2515_FILTERS = " + _literal(tuple((f"0x{i:x}", e) for i, e in mcp_filters)).replace("'", ""),
        ]
        return lines

    def checksum_tables(self) -> list[str]:
        lines = [""]
        entries = []
        for name in self.algorithms:
            algorithm = checksum.ALGORITHMS[name]
            if algorithm.kind == checksum.KIND_CRC8:
                lines += [f"# {name}: poly {algorithm.poly:#04x}, init {algorithm.init:#04x}, "
                          f"xorout {algorithm.xorout:#04x}, over every byte but the checksum byte.",
                          f"_{name}_TABLE = ("]
                table = algorithm.table()
                for start in range(0, 256, 16):
                    lines.append('    b"' + "".join(f"\\x{b:02x}" for b in table[start : start + 16]) + '"')
                lines.append(")")
                entries.append(f"({algorithm.kind}, _{name}_TABLE, {algorithm.xorout:#04x})")
            else:
                entries.append(f"({algorithm.kind}, None, 0)")
        lines.append(f"# {', '.join(self.algorithms) or 'None'}: (kind: 0 CRC-8 table, 1 byte sum, 2 nibble sum;")
        lines.append("# table; xorout), indexed by MSG_CHECKSUM_ALGORITHM.")
        lines += _tuple_lines("CHECKSUM_ALGORITHMS", entries, per_line=1, formatter=str)
        lines.append("# Per message: the checksum's starting value (CRC init, or the frame id's part of a sum).")
        lines += _tuple_lines("MSG_CHECKSUM_SEED", [self._seed(m) for m in self.messages], per_line=20)
        return lines

    @staticmethod
    def _seed(message: MessageSpec) -> int:
        if message.checksum is None:
            return 0
        return checksum.ALGORITHMS[message.checksum_algorithm].seed(message.frame_id, message.extended, message.length)

    def role_tables(self) -> list[str]:
        if self.roles is None:
            return []
        stated, factors = {}, {}
        for role, target in self.roles.roles.items():
            message, signal = target.split(".", 1)
            owner = next(m for m in self.messages if m.name == message)
            spec = next(s for s in owner.signals if s.name == signal)
            stated[role] = self.roles.units.get(role, spec.unit)
            factors[role] = self._role_factor(role, target, stated[role], spec, owner)
        source = comment(self.roles.path.name)
        lines = ["", f"# From the roles file {source}: role -> \"MESSAGE.Signal\", its unit as stated, and the"]
        lines.append("# exact factor (num, den) from that unit to the firmware's (km/h, L/h, rpm, %, kPa, degC, V, A)")
        lines.append("# where it is not 1.")
        lines.append("ROLES = {")
        lines += [f"    {role!r}: {target!r}," for role, target in self.roles.roles.items()]
        lines.append("}")
        lines.append("ROLE_UNITS = {")
        lines += [f"    {role!r}: {unit!r}," for role, unit in stated.items()]
        lines.append("}")
        lines.append("ROLE_FACTORS = {")
        lines += [f"    {role!r}: ({f.numerator}, {f.denominator})," for role, f in factors.items() if f != 1]
        lines.append("}")
        return lines

    def _role_factor(self, role: str, target: str, unit: str, spec, message: MessageSpec):
        """The unit's exact factor (units.py); where the factor times the signal's scale is a
        fraction the firmware's arithmetic cannot hold, the closest it can, with a warning."""
        where = f"{self.roles.path}: role {role} = {target!r}"
        try:
            factor = units.factor(role, unit, self.roles.tyre)
        except KeidriveError as error:
            raise KeidriveError(f"{where}: {error}") from None
        if factor is None:
            said = f"unit {unit!r}" if unit else "no unit"
            raise KeidriveError(f"{where}: the DBC gives {said}, not a known unit of {units.ROLE_QUANTITY[role]}: "
                                f"state it in the roles file's [units] ({', '.join(units.spellings(role))})")
        if factor == 1 or spec.scale == 0:
            return factor
        raw_max = (1 << (spec.length - 1)) if spec.is_signed else (1 << spec.length) - 1
        if spec.minimum is not None and spec.maximum is not None and spec.maximum > spec.minimum:
            # the range the DBC gives the value, in raw steps
            raw_max = min(raw_max, int(max(abs(spec.minimum - spec.offset), abs(spec.maximum - spec.offset))
                                       / abs(spec.scale)) + 1)
        exact = spec.scale * factor
        held = units.fit(role, exact, raw_max, message.cycle_ms)
        if held != exact:
            self.loaded[0].warnings.append(
                f"{where}: {unit} x scale {spec.scale} = {exact} per raw step, held as {held} (relative error "
                f"{float(abs(held - exact) / abs(exact)):.1e}) within the firmware's 31-bit arithmetic")
        return held / spec.scale
