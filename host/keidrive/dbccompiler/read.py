"""Reading DBC files with cantools, a message at a time where the file is imperfect.

The text is UTF-8 where it is valid UTF-8, else cp1252 (cantools' default).
``CM_ "IMPORT name.dbc";`` statements (opendbc's generator templates) are
resolved as opendbc's generator does: each named file beside it first, then
the file without those statements. cantools' strict load comes first; where
its strict check fails, the file is loaded non-strict with a warning naming
each message that fails it; a message cantools cannot build at all (a name
that is no DBC identifier, a syntax error inside its block) is cut out with
its one-line statements, and an unparsable one-line VAL_/BA_/CM_ statement is
left out alone. An id over 11 bits without the extended flag is read as the
29-bit id it is (opendbc's parser takes ids as written). Where cantools still
rejects the file as a whole (a VAL_ naming no signal of its message: "unused
VAL_ entries" in cantools 45), it is loaded a message at a time, each
message with the file's definitions (per_message.py). Each leaves one
warning line, printed once the compile succeeded.
"""

import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cantools

from ..errors import KeidriveError

# cantools errors that name the one message it could not build.
MESSAGE_IN_ERROR = re.compile(r"in message (\S+?)\.?\"?$")
LINE_IN_ERROR = re.compile(r"at line (\d+), column (\d+)")
# One-line statements about a message or signal that can be left out alone.
SIDE_STATEMENT = re.compile(r"^(VAL_|BA_|CM_|SIG_VALTYPE_|SG_MUL_VAL_|BO_TX_BU_)\s")
# The frame id such a statement refers to, if any.
STATEMENT_FRAME_ID = re.compile(
    r'^(?:VAL_|SIG_VALTYPE_|SG_MUL_VAL_|BO_TX_BU_|CM_ (?:BO_|SG_)|BA_ "[^"]*" (?:BO_|SG_))\s+(\d+)\b'
)
MESSAGE_LINE = re.compile(r"^BO_\s+(\d+)\s+(\S+?)\s*:")
SIGNAL_NAME = re.compile(r"^\s+SG_\s+(\S+)")
DBC_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# BO_ ids: bit 31 flags an extended id; without it the id must fit 11 bits.
DBC_EXTENDED_FLAG = 0x80000000
MAX_EXTENDED_ID = 0x1FFFFFFF
SIGNAL_LINE = re.compile(r"^\s+SG_\s")
# opendbc's generator: a template names the files it includes (generator/generator.py's pattern).
IMPORT_STATEMENT = re.compile(r'^CM_ "IMPORT (.*?)";[ \t]*$', re.MULTILINE)


def print_warnings(loaded: list["LoadedDbc"]) -> None:
    """One line on stderr per skipped message or relaxed check, once the compile succeeded
    (a failed one says why in its one error line)."""
    for dbc in loaded:
        for text in dbc.warnings:
            print(f"keidrive: warning: {one_line(text)}", file=sys.stderr)


@dataclass
class LoadedDbc:
    path: Path
    database: cantools.database.can.Database
    sha256: str
    skipped: list[str] = field(default_factory=list)  # "MESSAGE: why", for the module header
    warnings: list[str] = field(default_factory=list)
    imports: list[tuple[str, str]] = field(default_factory=list)  # (file name, sha256) of CM_ "IMPORT ..."


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _decode_text(path: Path, content: bytes) -> str:
    """The file's text: UTF-8 where it is valid UTF-8, else cp1252 (cantools' default)."""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp1252")
    except UnicodeDecodeError as error:
        raise KeidriveError(f"{path}: neither UTF-8 nor cp1252 text (byte {error.start})") from None


def _message_blocks(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first line, end line, name) of each BO_ block: its BO_ line and SG_ lines."""
    blocks = []
    for number, line in enumerate(lines):
        match = MESSAGE_LINE.match(line)
        if match is not None:
            end = number + 1
            while end < len(lines) and SIGNAL_LINE.match(lines[end]):
                end += 1
            blocks.append((number, end, match.group(2)))
    return blocks


def _message_block(lines: list[str], error: str) -> tuple[int, int, str] | None:
    """The BO_ block a cantools error points at, by name or by line, if any."""
    found = MESSAGE_IN_ERROR.search(error)
    at_line = LINE_IN_ERROR.search(error)  # counts the lines as passed to cantools
    for first, end, name in _message_blocks(lines):
        if (found and name == found.group(1)) or (at_line and first < int(at_line.group(1)) <= end):
            return first, end, name
    return None


def _side_statement(lines: list[str], error: str) -> int | None:
    """The line of a one-line VAL_/BA_/CM_... statement a cantools syntax error points at, if any.

    An error at column 1 is the previous statement's missing ``;``.
    """
    at_line = LINE_IN_ERROR.search(error)
    if at_line is None:
        return None
    number, column = int(at_line.group(1)) - 1, int(at_line.group(2))
    if column == 1:
        number -= 1
        while number >= 0 and not lines[number].strip():
            number -= 1
    if 0 <= number < len(lines) and SIDE_STATEMENT.match(lines[number]):
        return number
    return None


def _load_database(path: Path, lines: list[str], labels: list[str], skipped: list[str],
                   warnings: list[str]) -> cantools.database.can.Database:
    """cantools' strict load; else non-strict, naming each message that fails the strict check;
    else the file without the message (or the one-line statement) cantools cannot read,
    one at a time; else a message at a time. ``labels``: where each line comes from, for warnings."""

    def cut(first: int, end: int, name: str, reason: str) -> None:
        """Leave out a message's block and its one-line statements (cantools refuses dangling VAL_)."""
        nonlocal lines, labels
        warnings.append(f"{path.name}: message {name} skipped: {reason}")
        skipped.append(f"{name}: {reason}")
        frame_id = MESSAGE_LINE.match(lines[first]).group(1)
        kept = [
            k for k in range(len(lines))
            if not first <= k < end and not (
                (match := STATEMENT_FRAME_ID.match(lines[k])) and match.group(1) == frame_id
                and lines[k].rstrip().endswith(";")
            )
        ]
        lines, labels = [lines[k] for k in kept], [labels[k] for k in kept]

    # What cantools would refuse one message per parse, found in one pass (a
    # parse of a large file takes most of a second).
    already = len(warnings), len(skipped)
    for first, end, name in reversed(_message_blocks(lines)):
        frame_id = int(MESSAGE_LINE.match(lines[first]).group(1))
        names = [name] + [match.group(1) for line in lines[first + 1:end] if (match := SIGNAL_NAME.match(line))]
        bad_names = [n for n in names if not DBC_IDENTIFIER.match(n)]
        if bad_names:
            cut(first, end, name, f"{', '.join(bad_names)}: not a DBC identifier (cantools cannot read it)")
        elif not frame_id & DBC_EXTENDED_FLAG and frame_id > MAX_EXTENDED_ID:
            cut(first, end, name, f"frame id {frame_id:#x} is more than 29 bits")
        elif not frame_id & DBC_EXTENDED_FLAG and frame_id > 0x7FF:
            warnings.append(f"{path.name}: message {name}: frame id {frame_id:#x} is more than 11 bits without "
                            "the extended flag: read as a 29-bit id")
            _flag_extended(lines, frame_id)
    warnings[already[0]:] = reversed(warnings[already[0]:])  # in file order
    skipped[already[1]:] = reversed(skipped[already[1]:])
    while True:
        try:
            return cantools.database.load_string("\n".join(lines), database_format="dbc", strict=True)
        except Exception as error:  # cantools raises several unrelated types for bad input
            strict_error = one_line(error)
        try:
            database = cantools.database.load_string("\n".join(lines), database_format="dbc", strict=False)
        except Exception as error:
            block = _message_block(lines, one_line(error))
            statement = _side_statement(lines, one_line(error)) if block is None else None
            if statement is not None:
                warnings.append(f"{path.name}: {labels[statement]} ignored: {one_line(lines[statement])[:60]}: "
                                f"cantools cannot read it ({one_line(error)})")
                del lines[statement], labels[statement]
                continue
            if block is None:
                from .per_message import load_per_message

                database = load_per_message(path, lines, labels, skipped, warnings, one_line(error))
                relax_strict_check(path, database, warnings)
                return database
            cut(*block, f"cantools cannot read it ({one_line(error)})")
            continue
        if not relax_strict_check(path, database, warnings):  # the strict failure was about the file
            warnings.append(f"{path.name}: {strict_error}; loaded without cantools' strict checks")
        return database


def relax_strict_check(path: Path, database, warnings: list[str]) -> int:
    """Each message that fails cantools' strict check, non-strict with a warning; how many."""
    relaxed = 0
    for message in database.messages:
        try:
            message.refresh(strict=True)
        except Exception as error:
            warnings.append(
                f"{path.name}: message {message.name}: {one_line(error)}; loaded without cantools' strict check"
            )
            message.refresh(strict=False)
            relaxed += 1
    return relaxed


def _flag_extended(lines: list[str], frame_id: int) -> None:
    """The message's BO_ line and every statement about it, with the id flagged extended."""
    flagged = str(frame_id | DBC_EXTENDED_FLAG)
    for k, line in enumerate(lines):
        match = MESSAGE_LINE.match(line) or STATEMENT_FRAME_ID.match(line)
        if match is not None and match.group(1) == str(frame_id):
            lines[k] = line[:match.start(1)] + flagged + line[match.end(1):]


def _with_imports(path: Path, text: str) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The lines to parse, each one's label, and the imported files (name, sha256): opendbc's
    generator puts each imported file first, then the template without its IMPORT statements."""
    names = IMPORT_STATEMENT.findall(text)
    lines: list[str] = []
    labels: list[str] = []
    imports = []
    for name in names:
        if name != Path(name).name or not name.endswith(".dbc"):
            raise KeidriveError(f"{path}: IMPORT {name!r}: not the name of a .dbc file beside it")
        try:
            content = (path.parent / name).read_bytes()
        except OSError as error:
            raise KeidriveError(f"{path}: IMPORT {name}: cannot read it beside {path.name}: "
                                f"{error.strerror}") from None
        imported = _decode_text(path.parent / name, content).splitlines()
        lines += imported
        labels += [f"{name} line {k}" for k in range(1, len(imported) + 1)]
        imports.append((name, hashlib.sha256(content).hexdigest()))
    for number, line in enumerate(text.splitlines(), 1):
        if not (names and IMPORT_STATEMENT.match(line)):
            lines.append(line)
            labels.append(f"line {number}")
    return lines, labels, imports


def load_dbc(path: Path) -> LoadedDbc:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise KeidriveError(f"{path}: no such file") from None
    except OSError as error:
        raise KeidriveError(f"{path}: cannot read: {error.strerror}") from None
    skipped: list[str] = []
    warnings: list[str] = []
    lines, labels, imports = _with_imports(path, _decode_text(path, content))
    database = _load_database(path, lines, labels, skipped, warnings)
    return LoadedDbc(path, database, hashlib.sha256(content).hexdigest(), skipped, warnings, imports)
