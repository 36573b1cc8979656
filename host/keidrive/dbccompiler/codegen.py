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
from .filters import DEFAULT_MAX_FILTERS, SearchWork
from .load import MessageSpec, Mux, SignalSpec
from .read import LoadedDbc
from .tables import TableWriter, _tuple_lines, comment

# What decorates the generated functions. "viper" is the default: see
# bench.py for the measurement behind that choice.
STYLES = ("viper", "native", "python")
DEFAULT_STYLE = "viper"

# Messages up to this many are tested in one chain, most frequent first;
# more are split by index into a binary tree of such chains.
CHAIN_MESSAGES = 8

BIND = """

# Received frame -> values (CHECKSUM unchecked): the message index, -1 unknown
# id, -2 wrong DLC; a multiplexed message writes only the pages that arrived.
# The one runtime function kept here, over module globals: as a bound method
# of the shared runtime it took 1.6x as long per frame (MicroPython unix port).
def dispatch(key, data, dlc, values):
    index = MSG_KEY.get(key, -1)
    if index < 0:
        return -1
    if dlc != MSG_LEN[index]:
        return -2
    decode_at(-1 - index, data, 0, values)
    return index


# The shared runtime (keifw/dbcrt.py) bound to this module's tables.
(new_values, frame_key, encode, checksum, checksum_ok,
 raw_value, physical, frame_slots, decode) = dbcrt.bind(globals())"""


def _mux_signals(layout: list) -> list[SignalSpec]:
    """Every multiplexer in a layout, nested ones too, in order."""
    found = []
    for item in layout:
        if isinstance(item, Mux):
            found.append(item.signal)
            for _, page in item.pages:
                found += _mux_signals(page)
    return found


class ModuleWriter(TableWriter):
    """The tables (TableWriter) and the code: ``decode_at`` and ``_encode_at``."""

    def __init__(self, loaded: list[LoadedDbc], messages: list[MessageSpec], options: str,
                 max_filters: int = DEFAULT_MAX_FILTERS, style: str = DEFAULT_STYLE,
                 work: SearchWork | None = None, roles=None):
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}")
        super().__init__(loaded, messages, options, max_filters, work, roles)
        self.style = style

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
                f"{indent}values[{slot}] = {self._read_word(signal, lo, hi)}  # {comment(signal.name)} limb {k}"
                for k, (slot, lo, hi) in enumerate(signal.words)
            ]
        word = self._read_word(signal, 0, signal.length)
        target = local or "raw"
        if not signal.is_signed:
            if local is None:
                return [f"{indent}values[{signal.slot}] = {word}  # {comment(signal.name)}"]
            return [f"{indent}{local} = {word}", f"{indent}values[{signal.slot}] = {local}  # {comment(signal.name)}"]
        # Sign-extend without constants beyond 2**30: viper words are 32-bit on
        # boards and 64-bit on unix; both give the same low 32 bits.
        n = signal.length
        sign = target if n == 1 else f"({target} >> {n - 1})"
        return [
            f"{indent}{target} = {word}",
            f"{indent}{target} = {target} - ({sign} << {n})",
            f"{indent}values[{signal.slot}] = {target}  # {comment(signal.name)}",
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
                lines.append(f"{indent}if i == {message.index}:  # {comment(message.name)}")
                lines += branch(message, indent + "    ")
            return lines
        middle = len(messages) // 2
        return (
            [f"{indent}if i < {messages[middle].index}:"]
            + self._chain(messages[:middle], indent + "    ", branch)
            + [f"{indent}else:"]
            + self._chain(messages[middle:], indent + "    ", branch)
        )

    def commit_table(self) -> list[str]:
        """The slots each message's decode writes: a message's signals hold
        consecutive slots (load._assign_slots), so a frame decoded into
        staging values is committed by copying one range."""
        first = []
        start = self.n_slots
        for message in reversed(self.messages):  # a message without signals: an empty range
            start = message.signals[0].slot if message.signals else start
            first.insert(0, start)
        return [
            "",
            "# Per message i, the slots its frames decode into: MSG_SLOT0[i] .. MSG_SLOT0[i + 1] - 1.",
        ] + _tuple_lines("MSG_SLOT0", first + [self.n_slots], per_line=20)

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
            "# The caller checks the DLC against MSG_LEN. The firmware decodes into staging values and",
            "# commits a frame's slots (MSG_SLOT0) only once its COUNTER and plausibility have passed.",
        ]
        lines += self._function_header("decode_at", "i: int, buf: ptr8, o: int, values: ptr32", "-> int")
        lines += ["    checked = 1", "    if i < 0:", "        i = ~i", "        checked = 0"]
        for name in self.algorithms:
            if checksum.ALGORITHMS[name].kind == checksum.KIND_CRC8:
                table = f"_{name}_TABLE"
                cast = f"ptr8({table})" if self.style == "viper" else table
                lines.append(f"    {table.lower()} = {cast}")

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
        lines += self.commit_table() + self.decode_at()
        lines += self.encode_at()
        lines.append(BIND)
        return "\n".join(lines).rstrip("\n") + "\n"


def generate(loaded: list[LoadedDbc], messages: list[MessageSpec], options: str,
             max_filters: int = DEFAULT_MAX_FILTERS, style: str = DEFAULT_STYLE,
             work: SearchWork | None = None, roles=None) -> str:
    return ModuleWriter(loaded, messages, options, max_filters, style, work, roles).module()

