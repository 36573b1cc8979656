"""Loading a DBC a message at a time, where cantools rejects the file as a whole.

cantools 45 refuses a whole file for a statement no message claims (a VAL_
naming a signal its message lacks: "unused VAL_ entries"), even non-strict,
and its error names no line. Here each message is parsed on its own: the
file's definitions (everything that is not about one frame id: VERSION, BU_,
BA_DEF_, VAL_TABLE_...) with that message's block and its statements (VAL_,
CM_, BA_, SIG_VALTYPE_, SG_MUL_VAL_...). A VAL_ that cantools names as
unused is left out; a message whose statements still fail is kept without
them; a message that fails alone is skipped. One warning line each.
"""

import re
from pathlib import Path

import cantools

from ..errors import KeidriveError
from .read import MESSAGE_LINE, STATEMENT_FRAME_ID, one_line

# cantools 45's "unused VAL_ entries in DBC: VAL_ 568 UI_mapSpeedLimit ..."
UNUSED_VAL = re.compile(r"VAL_ (\d+) (\w+)")
SIGNAL_GROUP = re.compile(r"^SIG_GROUP_\s+(\d+)\b")
# What a statement may begin with (Vector's DBC format): anything else is no statement, and
# taken out of its place it could read as part of another (BU_'s node list takes any word).
KEYWORDS = frozenset((
    "VERSION NS_ BS_ BU_ BO_ CM_ BA_DEF_ BA_DEF_DEF_ BA_ VAL_ VAL_TABLE_ SIG_VALTYPE_ SG_MUL_VAL_ BO_TX_BU_ "
    "EV_ ENVVAR_DATA_ SGTYPE_ SGTYPE_VAL_ SIG_TYPE_REF_ SIG_GROUP_ BA_DEF_REL_ BA_REL_ BA_DEF_DEF_REL_ "
    "BU_SG_REL_ BU_EV_REL_ BU_BO_REL_ CAT_DEF_ CAT_ FILTER EV_DATA_"
).split())


def _statements(lines: list[str]) -> list[tuple[int, int]]:
    """(first line, end line) of each statement: a line starting at column 0 outside a
    string begins one; indented lines (SG_, the NS_ list) and a string's lines continue it."""
    spans = []
    open_string = False
    for number, line in enumerate(lines):
        if not open_string and line[:1].strip():
            spans.append([number, number + 1])
        elif spans:
            spans[-1][1] = number + 1
        open_string ^= (line.count('"') - line.count('\\"')) % 2 == 1
    return [(first, end) for first, end in spans]


def _frame_id(line: str) -> str | None:
    match = MESSAGE_LINE.match(line) or STATEMENT_FRAME_ID.match(line) or SIGNAL_GROUP.match(line)
    return match.group(1) if match else None


def _parse(text: str):
    return cantools.database.load_string(text, database_format="dbc", strict=False)


def load_per_message(path: Path, lines: list[str], labels: list[str], skipped: list[str], warnings: list[str],
                     file_error: str) -> cantools.database.can.Database:
    """The database of every message cantools reads on its own (see the module's docstring)."""
    header: list[str] = []
    blocks: dict[str, tuple[str, list[str]]] = {}   # frame id -> (name, block lines)
    about: dict[str, list[tuple[str, str]]] = {}    # frame id -> its statements (label, text)
    for first, end in _statements(lines):
        text = "\n".join(lines[first:end])
        frame_id = _frame_id(lines[first])
        if lines[first].split(None, 1)[0].rstrip(":") not in KEYWORDS:
            raise KeidriveError(f"{path}: cantools rejects this DBC: {file_error}")
        if frame_id is None:
            header.append(text)
        elif MESSAGE_LINE.match(lines[first]):
            blocks[frame_id] = (MESSAGE_LINE.match(lines[first]).group(2), text)
        else:
            about.setdefault(frame_id, []).append((labels[first], text))
    if not "".join(header).strip():
        header = ['VERSION ""']  # cantools parses no empty file
    try:
        definitions = _parse("\n".join(header))
    except Exception as error:
        raise KeidriveError(f"{path}: cantools rejects this DBC: {file_error}; its definitions alone: "
                            f"{one_line(error)}") from None
    for frame_id in sorted(set(about) - set(blocks), key=int):
        for label, text in about[frame_id]:
            warnings.append(f"{path.name}: {label} ignored: {one_line(text)[:60]}: names no message of the file")
    messages = []
    for frame_id, (name, block) in blocks.items():
        statements = about.get(frame_id, [])
        message = _load_message(path, name, header, block, statements, warnings)
        if isinstance(message, str):
            warnings.append(f"{path.name}: message {name} skipped: cantools cannot read it ({message})")
            skipped.append(f"{name}: cantools cannot read it ({message})")
        else:
            messages.append(message)
    return cantools.database.can.Database(
        messages, definitions.nodes, definitions.buses, definitions.version, definitions.dbc, strict=False,
    )


def _load_message(path: Path, name: str, header: list[str], block: str, statements: list[tuple[str, str]],
                  warnings: list[str]):
    """The message parsed with the definitions and its statements, those cantools names as
    unused left out; else without its statements; else the error's text."""
    while True:
        try:
            return _parse("\n".join(header + [block] + [text for _, text in statements])).messages[0]
        except Exception as error:
            reason = one_line(error)
            unused = {match.groups() for match in UNUSED_VAL.finditer(reason)} if "unused VAL_" in reason else set()
            if not unused:
                break
        kept = []
        for label, text in statements:
            match = re.match(r"VAL_\s+(\d+)\s+(\w+)", text)
            if match and match.groups() in unused:
                warnings.append(f"{path.name}: {label} ignored: {one_line(text)[:60]}: message {name} has no "
                                f"signal {match.group(2)} (cantools refuses it)")
            else:
                kept.append((label, text))
        if len(kept) == len(statements):
            break
        statements = kept
    try:
        message = _parse("\n".join(header + [block])).messages[0]
    except Exception as error:
        return one_line(error)
    lines = ", ".join(label for label, _ in statements)
    warnings.append(f"{path.name}: message {name}: its statements ({lines}) ignored: cantools cannot read "
                    f"them ({reason})")
    return message
