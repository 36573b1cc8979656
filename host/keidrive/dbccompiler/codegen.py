"""Emitting the generated MicroPython module.

The output runs unchanged on MicroPython (boards and the unix port) and on
CPython. It holds the DBC's tables and two viper functions over the message
index, ``decode_at`` and ``_encode_at``: straight-line byte shifts and masks
into a preallocated ``array('i')``, so they never allocate. Every raw value
kept in a slot fits a 31-bit small int (the narrowest MicroPython has),
wider signals are split into 16-bit limbs. The rest of the API is the shared
runtime ``keifw/dbcrt.py``, bound to the tables at import.
"""

from . import bits, checksum
from .filters import DEFAULT_MAX_FILTERS, SearchWork, machine_can_filters, mcp2515_filters
from .load import LoadedDbc, MessageSpec, Mux, SignalSpec

# What decorates the generated functions. "viper" is the default: see
# bench.py for the measurement behind that choice.
STYLES = ("viper", "native", "python")
DEFAULT_STYLE = "viper"

# machine.CAN.FLAG_EXT_ID (extmod/machine_can_port.h: RTR is bit 0, EXT_ID bit 1).
MACHINE_CAN_FLAG_EXT_ID = 2
# Messages up to this many are tested in one chain, most frequent first;
# more are split by index into a binary tree of such chains.
CHAIN_MESSAGES = 8

IMPORTS = """\
from keifw import dbcrt  # first: on CPython, keifw stands in for the micropython module
import micropython
from micropython import const
"""

BIND = """
# The shared runtime (keifw/dbcrt.py) bound to this module's tables.
(new_values, frame_key, dispatch, encode, checksum, checksum_ok,
 raw_value, physical, frame_slots, decode) = dbcrt.bind(globals())"""

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
decodes without the check. The rest (dispatch, encode, decode, ...) is the
shared runtime keifw/dbcrt.py.
"""
'''


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


def _mux_signals(layout: list) -> list[SignalSpec]:
    """Every multiplexer in a layout, nested ones too, in order."""
    found = []
    for item in layout:
        if isinstance(item, Mux):
            found.append(item.signal)
            for _, page in item.pages:
                found += _mux_signals(page)
    return found


class ModuleWriter:
    def __init__(self, loaded: list[LoadedDbc], messages: list[MessageSpec], options: str,
                 max_filters: int = DEFAULT_MAX_FILTERS, style: str = DEFAULT_STYLE,
                 work: SearchWork | None = None, roles=None):
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}")
        self.loaded = loaded
        self.messages = messages
        self.options = options
        self.max_filters = max_filters
        self.style = style
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
        lines = [f"# Generated by keidrive dbc compile from {names} — do not edit."]
        lines += [f"# {dbc.path.name} sha256 {dbc.sha256[:16]}" for dbc in self.loaded]
        lines.append(f"# Options: {self.options}")
        lines += [f"# Skipped from {dbc.path.name}: {why}" for dbc in self.loaded for why in dbc.skipped]
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
        lines += _tuple_lines("MSG_CHECKSUM_SLOT", [m.checksum.slot if m.checksum else -1 for m in messages], per_line=20)
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
        lines += [f"    {m.key:#x}: {m.index},  # {m.name}" for m in messages]
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
        can_filters = machine_can_filters(standard, extended, self.max_filters, self.work)
        masks, mcp_filters = mcp2515_filters(standard, extended, self.work)
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
        units = {}
        for role, target in self.roles.roles.items():
            message, signal = target.split(".", 1)
            spec = next(s for m in self.messages if m.name == message for s in m.signals if s.name == signal)
            units[role] = self.roles.units.get(role, spec.unit)
        lines = ["", f"# From the roles file {self.roles.path.name}: role -> \"MESSAGE.Signal\", and its unit."]
        lines.append("ROLES = {")
        lines += [f"    {role!r}: {target!r}," for role, target in self.roles.roles.items()]
        lines.append("}")
        lines.append("ROLE_UNITS = {")
        lines += [f"    {role!r}: {unit!r}," for role, unit in units.items()]
        lines.append("}")
        return lines

    # --- code ----------------------------------------------------------------

    def _function_header(self, name: str, viper_args: str, viper_return: str = "") -> list[str]:
        if self.style == "viper":
            return ["@micropython.viper", f"def {name}({viper_args}){' ' + viper_return if viper_return else ''}:"]
        plain_args = ", ".join(arg.split(":")[0] for arg in viper_args.split(", "))
        decorator = ["@micropython.native"] if self.style == "native" else []
        return decorator + [f"def {name}({plain_args}):"]

    @staticmethod
    def _buf_byte(byte: int) -> str:
        return f"buf[o + {byte}]" if byte else "buf[o]"

    @staticmethod
    def _read_word(signal: SignalSpec, lo: int, hi: int) -> str:
        """Expression for raw bits [lo, hi) of ``signal`` read from ``buf`` at ``o``, unsigned."""
        terms = []
        for chunk in bits.chunks(signal.start, signal.length, signal.byte_order, lo, hi):
            term = ModuleWriter._buf_byte(chunk.byte)
            if chunk.shift:
                term = f"({term} >> {chunk.shift})"
            if chunk.shift + chunk.width < 8:
                term = f"({term} & {chunk.mask:#x})"
            if chunk.raw_pos - lo:
                term = f"({term} << {chunk.raw_pos - lo})"
            terms.append(term)
        if len(terms) == 1 and terms[0].startswith("("):
            return terms[0][1:-1]
        return " | ".join(terms)

    def _decode_signal(self, signal: SignalSpec, indent: str, local: str | None = None) -> list[str]:
        """Store ``signal``'s raw value; ``local`` also keeps it in a viper local (a multiplexer:
        reading it back from ``values`` in viper would give a zero-extended word)."""
        if signal.n_limbs > 1:
            return [
                f"{indent}values[{slot}] = {self._read_word(signal, lo, hi)}  # {signal.name} limb {k}"
                for k, (slot, lo, hi) in enumerate(signal.words)
            ]
        word = self._read_word(signal, 0, signal.length)
        target = local or "raw"
        if not signal.is_signed:
            if local is None:
                return [f"{indent}values[{signal.slot}] = {word}  # {signal.name}"]
            return [f"{indent}{local} = {word}", f"{indent}values[{signal.slot}] = {local}  # {signal.name}"]
        # Sign-extend without constants beyond 2**30: viper words are 32-bit on
        # boards and 64-bit on unix; both give the same low 32 bits.
        n = signal.length
        sign = target if n == 1 else f"({target} >> {n - 1})"
        return [
            f"{indent}{target} = {word}",
            f"{indent}{target} = {target} - ({sign} << {n})",
            f"{indent}values[{signal.slot}] = {target}  # {signal.name}",
        ]

    @staticmethod
    def _page_test(local: str, values: tuple[int, ...]) -> str:
        return " or ".join(f"{local} == {value}" for value in values)

    def _decode_layout(self, layout: list, indent: str, locals_: dict[str, str]) -> list[str]:
        body = []
        for item in layout:
            if isinstance(item, Mux):
                local = locals_[item.signal.name]
                body += self._decode_signal(item.signal, indent, local)
                position = 0
                for values, page in item.pages:
                    page_body = self._decode_layout(page, indent + "    ", locals_)
                    if not page_body:
                        continue  # a page with no signals of its own: nothing to write
                    body.append(f"{indent}{'if' if position == 0 else 'elif'} {self._page_test(local, values)}:")
                    body += page_body
                    position += 1
            else:
                body += self._decode_signal(item, indent)
        return body

    @staticmethod
    def _locals(message: MessageSpec) -> dict[str, str]:
        return {signal.name: f"m{k}" for k, signal in enumerate(_mux_signals(message.layout))}

    def _chain(self, messages: list[MessageSpec], indent: str, branch) -> list[str]:
        """Branches over ``i``: one chain, most frequent first, or a binary tree of chains by index."""
        if len(messages) <= CHAIN_MESSAGES:
            lines = []
            order = sorted(messages, key=lambda m: (m.cycle_ms if m.cycle_ms > 0 else 1 << 30, m.index))
            for message in order:
                lines.append(f"{indent}if i == {message.index}:  # {message.name}")
                lines += branch(message, indent + "    ")
            return lines
        middle = len(messages) // 2
        return (
            [f"{indent}if i < {messages[middle].index}:"]
            + self._chain(messages[:middle], indent + "    ", branch)
            + [f"{indent}else:"]
            + self._chain(messages[middle:], indent + "    ", branch)
        )

    def decode_at(self) -> list[str]:
        """One function for the firmware's hot path: CHECKSUM check and decode of any message.

        Each branch is the CRC unrolled over the message's bytes, then the
        straight-line decode: one call per frame.
        """
        lines = [
            "",
            "# Hot path: check the CHECKSUM of message i held in buf[o:o + MSG_LEN[i]] and, when it",
            "# matches, decode it into values. 0: decoded; -1: CHECKSUM mismatch, nothing decoded;",
            "# -2: no such message. i = ~index decodes without the check (dispatch, decode).",
            "# The caller checks the DLC against MSG_LEN.",
        ]
        lines += self._function_header("decode_at", "i: int, buf: ptr8, o: int, values: ptr32", "-> int")
        lines += ["    checked = 1", "    if i < 0:", "        i = ~i", "        checked = 0"]
        for name in self.algorithms:
            if checksum.ALGORITHMS[name].kind == checksum.KIND_CRC8:
                table = f"_{name}_TABLE"
                lines.append(f"    {table.lower()} = ptr8({table})" if self.style == "viper" else f"    {table.lower()} = {table}")

        def branch(message: MessageSpec, indent: str) -> list[str]:
            body = []
            if message.checksum is not None:
                body += self._check(message, indent)
            body += self._decode_layout(message.layout, indent, self._locals(message))
            return body + [f"{indent}return 0"]

        lines += self._chain(self.messages, "    ", branch)
        lines.append("    return -2")
        return lines

    def _check(self, message: MessageSpec, indent: str) -> list[str]:
        """The CHECKSUM check, unrolled over the frame's bytes: return -1 on a mismatch."""
        algorithm = checksum.ALGORITHMS[message.checksum_algorithm]
        skip = message.checksum_byte
        at = self._buf_byte(skip)
        others = [self._buf_byte(k) for k in range(message.length) if k != skip]
        lines = [f"{indent}if checked:"]
        inner = indent + "    "
        if algorithm.kind == checksum.KIND_CRC8:
            table = f"_{message.checksum_algorithm}_TABLE".lower()
            lines.append(f"{inner}crc = {algorithm.init:#04x}")
            lines += [f"{inner}crc = {table}[crc ^ {byte}]" for byte in others]
            lines.append(f"{inner}if (crc ^ {algorithm.xorout:#04x}) != {at}:")
        elif algorithm.kind == checksum.KIND_BYTE_SUM:
            lines.append(f"{inner}s = {' + '.join([str(self._seed(message))] + others)}")
            lines.append(f"{inner}if (s & 0xff) != {at}:")
        else:
            nibbles = [f"({byte} & 0xf) + ({byte} >> 4)" for byte in others] + [f"({at} >> 4)"]
            lines.append(f"{inner}s = {' + '.join([str(self._seed(message))] + nibbles)}")
            lines.append(f"{inner}if ((0 - s) & 0xf) != ({at} & 0xf):")
        lines.append(f"{inner}    return -1")
        return lines

    @staticmethod
    def _byte_contributions(signal: SignalSpec) -> dict[int, list[str]]:
        """Per data byte, the expressions placing ``signal``'s bits from ``values``."""
        result: dict[int, list[str]] = {}
        for slot, lo, hi in signal.words:
            for chunk in bits.chunks(signal.start, signal.length, signal.byte_order, lo, hi):
                term = f"values[{slot}]"
                if chunk.raw_pos - lo:
                    term = f"({term} >> {chunk.raw_pos - lo})"
                term = f"({term} & {chunk.mask:#x})"
                if chunk.shift:
                    term = f"({term} << {chunk.shift})"
                result.setdefault(chunk.byte, []).append(term)
        return result

    def _encode_bytes(self, signals: list[SignalSpec], indent: str, length: int = 0) -> list[str]:
        """Byte assignments: all ``length`` bytes set outright, or (length 0) ORed into."""
        per_byte: dict[int, list[str]] = {}
        for signal in signals:
            for byte, terms in self._byte_contributions(signal).items():
                per_byte.setdefault(byte, []).extend(terms)
        lines = []
        for byte in range(length) if length else sorted(per_byte):
            expression = " | ".join(per_byte.get(byte, ["0"]))
            if not length:
                expression = f"buf[{byte}] | {expression}"
            lines.append(f"{indent}buf[{byte}] = {expression}")
        return lines

    def _encode_pages(self, layout: list, indent: str, locals_: dict[str, str]) -> list[str]:
        """ORs in each multiplexer's page, chosen by its value in ``values``."""
        body = []
        for item in layout:
            if not isinstance(item, Mux):
                continue
            local = locals_[item.signal.name]
            body.append(f"{indent}{local} = values[{item.signal.slot}]")
            position = 0
            for values, page in item.pages:
                signals = [entry.signal if isinstance(entry, Mux) else entry for entry in page]
                page_body = self._encode_bytes(signals, indent + "    ")
                page_body += self._encode_pages(page, indent + "    ", locals_)
                if not page_body:
                    continue
                body.append(f"{indent}{'if' if position == 0 else 'elif'} {self._page_test(local, values)}:")
                body += page_body
                position += 1
        return body

    def encode_at(self) -> list[str]:
        """The frame of TX message i from ``values`` into ``buf`` (dbcrt.encode adds COUNTER, CHECKSUM)."""
        lines = ["", "# Hot path: the frame of TX message i from values into buf[0:MSG_LEN[i]]."]
        lines += self._function_header("_encode_at", "i: int, values: ptr32, buf: ptr8")

        def branch(message: MessageSpec, indent: str) -> list[str]:
            body = self._encode_bytes(message.unconditional_signals, indent, message.length)
            body += self._encode_pages(message.layout, indent, self._locals(message))
            return body + [f"{indent}return"]

        tx = [message for message in self.messages if message.tx]
        lines += self._chain(tx, "    ", branch) if tx else ["    pass"]
        return lines

    def module(self) -> str:
        lines = self.header() + self.message_tables() + self.slot_tables() + self.filter_tables()
        lines += self.checksum_tables() + self.role_tables()
        lines += self.decode_at()
        lines += self.encode_at()
        lines.append(BIND)
        return "\n".join(lines).rstrip("\n") + "\n"


def generate(loaded: list[LoadedDbc], messages: list[MessageSpec], options: str,
             max_filters: int = DEFAULT_MAX_FILTERS, style: str = DEFAULT_STYLE,
             work: SearchWork | None = None, roles=None) -> str:
    return ModuleWriter(loaded, messages, options, max_filters, style, work, roles).module()
