"""Reading a recorded drive log, and telling which vehicle DBC it speaks.

A log cut short (the logger lost power mid-line or mid-container) is read up
to what is whole, and the cut is reported with its position instead of
refusing the whole drive or replaying part of it without a word.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import can
import cantools

from ..errors import KeidriveError
from ..paths import dbc_dir

# The firmware's own frames say nothing about the vehicle.
FIRMWARE_DBC = "keidrive_fw.dbc"
# Below this share of a log's frames defined by its DBC, the log is of
# another car (or the DBC is): a replay would report an empty trip as right.
MIN_EXPLAINED_SHARE = 0.5
# A truth whose duration differs from the log's by more than this is of another drive.
DURATION_TOLERANCE_S = 2.0
LINE_FORMATS = (".asc", ".log", ".trc", ".csv")


@dataclass
class DriveLog:
    messages: list
    # None for a whole log; else where it was cut: frames_read, and line and
    # byte (text formats) or byte and expected_bytes (BLF).
    truncated: dict | None = None

    def describe_cut(self, path) -> str:
        cut = self.truncated
        if "line" in cut:
            where = f"its last line (line {cut['line']}, byte {cut['byte']}) is cut"
        elif cut.get("expected_bytes", 0) > cut["byte"]:
            where = f"cut at byte {cut['byte']} of the {cut['expected_bytes']} its header announces"
        elif cut.get("expected_bytes"):
            where = f"never closed by its logger (its header still says {cut['expected_bytes']} bytes of {cut['byte']})"
        else:
            where = f"cut at byte {cut['byte']}"
        return f"{path}: truncated: {where}; replaying the {cut['frames_read']} whole frames before it"


def log_suffix(path: str | Path) -> str:
    """The format suffix of a log, looking through a ``.gz``."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if len(suffixes) > 1 and suffixes[-1] == ".gz":
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def read_log(path: str | Path) -> list[can.Message]:
    """Every whole frame of a log python-can reads, in file order."""
    return read_drive_log(path).messages


def read_drive_log(path: str | Path) -> DriveLog:
    """The frames of a log python-can reads, and where it was cut if it was;
    one clear error for a missing, unreadable, unknown-format, corrupt or empty log."""
    path = Path(path)
    if not path.is_file():
        raise KeidriveError(f"{path}: no such log file")
    suffix = log_suffix(path)
    try:
        if suffix in LINE_FORMATS:
            log = _read_lines(path, suffix)
        elif suffix == ".blf" and path.suffix.lower() == ".blf":
            log = _read_blf(path)
        else:
            log = DriveLog([msg for msg in can.LogReader(str(path))])
    except KeidriveError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, EOFError) as error:
        raise KeidriveError(f"{path}: cannot read this log ({error})") from None
    except Exception as error:  # python-can's readers raise whatever their parsers hit
        raise KeidriveError(f"{path}: not a readable {path.suffix or 'log'} file ({type(error).__name__}: {error})") from None
    if not log.messages:
        raise KeidriveError(f"{path}: the log holds no frames")
    return log


class _CountedLines:
    """A text file for python-can's line readers that knows the line number
    and byte offset of the line being parsed (exact for any line ending)."""

    def __init__(self, raw):
        self._raw = raw
        self.line = 0
        self.start = 0
        self._offset = 0

    def readline(self, *_):
        data = self._raw.readline()
        if data:
            self.line += 1
            self.start, self._offset = self._offset, self._offset + len(data)
        return data.decode("utf-8", "replace").replace("\r\n", "\n")

    def __iter__(self):
        return self

    def __next__(self):
        text = self.readline()
        if not text:
            raise StopIteration
        return text

    def rest(self) -> bytes:
        return self._raw.read()

    def close(self):
        self._raw.close()


def _read_lines(path: Path, suffix: str) -> DriveLog:
    from can.io.player import MESSAGE_READERS

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    lines = _CountedLines(opener(path, "rb"))
    messages = []
    try:
        for msg in MESSAGE_READERS[suffix](lines):
            messages.append(msg)
    except Exception as error:  # the reader's parse error on the line it was given
        line, start = lines.line, lines.start
        if lines.rest().strip():
            lines.close()
            raise KeidriveError(f"{path}: line {line}: not a {suffix} frame ({type(error).__name__}: {error})") from None
        # The bad line is the last one: the log was cut there.
        lines.close()
        return DriveLog(messages, {"frames_read": len(messages), "line": line, "byte": start})
    return DriveLog(messages)


def _read_blf(path: Path) -> DriveLog:
    from can.io.blf import BLFReader

    reader = BLFReader(str(path))
    expected = reader.file_size
    messages = []
    try:
        for msg in reader:
            messages.append(msg)
    except Exception:  # a cut inside an object or a compressed container
        reader.stop()
    size = os.path.getsize(path)
    # python-can's BLFReader stops quietly where the file ends; the header
    # (rewritten when the logger closes the file) says where it should, and
    # a logger that lost power never rewrote it.
    if size != expected:
        return DriveLog(messages, {"frames_read": len(messages), "byte": size, "expected_bytes": expected})
    return DriveLog(messages)


@cache
def vehicle_ids() -> dict[str, frozenset]:
    """Frame keys (id, extended) each vehicle DBC defines."""
    known = {}
    for dbc in sorted(dbc_dir().glob("*.dbc")):
        if dbc.name == FIRMWARE_DBC:
            continue
        known[dbc.stem] = dbc_file_ids(dbc)
    return known


def dbc_file_ids(path) -> frozenset:
    """Frame keys (id, extended) a DBC file defines, read as the DBC compiler reads
    it (UTF-8 or cp1252, non-strict where cantools' strict check fails), so any DBC
    the compiler accepts can explain a log; a J1939 message as (its parameter group, "j1939"),
    which frames of any priority and source address share."""
    from ..dbccompiler import j1939
    from ..dbccompiler.read import load_dbc

    database = load_dbc(Path(path)).database
    return frozenset((j1939.parameter_group(m.frame_id), "j1939") if j1939.is_j1939(m)
                     else (m.frame_id, m.is_extended_frame) for m in database.messages)


def _explained(key, known) -> bool:
    from ..dbccompiler import j1939

    return key in known or (key[1] and (j1939.parameter_group(key[0]), "j1939") in known)


@cache
def firmware_ids() -> frozenset:
    database = cantools.database.load_file(str(dbc_dir() / FIRMWARE_DBC))
    return frozenset((m.frame_id, m.is_extended_frame) for m in database.messages)


def _frame_keys(messages) -> Counter:
    return Counter((m.arbitration_id, m.is_extended_id) for m in messages if not m.is_error_frame)


def guess_vehicle_dbc(messages, path="log") -> str:
    """The vehicle DBC whose messages carry most of the log's frames."""
    seen = _frame_keys(messages)
    scores = {name: sum(seen[key] for key in ids) for name, ids in vehicle_ids().items()}
    # Ties (the shared ABS and cluster frames) go to the DBC that explains
    # more distinct IDs of the log, then to the smaller DBC.
    best = max(
        scores,
        key=lambda name: (scores[name], len(vehicle_ids()[name] & seen.keys()), -len(vehicle_ids()[name])),
    )
    if scores[best] == 0:
        raise KeidriveError(
            f"{path}: no frame of the log is defined by a vehicle DBC ({', '.join(sorted(vehicle_ids()))})"
        )
    return best


def coverage(messages, dbc: str) -> tuple[int, float]:
    """(unknown frames, share of the log's frames that ``dbc`` or the
    firmware's own DBC define); error frames are not frames of the car."""
    ids = dbc_file_ids(dbc) if Path(dbc).suffix == ".dbc" and Path(dbc).is_file() else vehicle_ids().get(Path(dbc).stem)
    if ids is None:
        raise KeidriveError(f"unknown vehicle DBC {dbc!r}: one of {', '.join(sorted(vehicle_ids()))}")
    seen = _frame_keys(messages)
    total = sum(seen.values())
    known = ids | firmware_ids()
    unknown = sum(count for key, count in seen.items() if not _explained(key, known))
    return unknown, round((total - unknown) / total, 4) if total else 0.0


def require_coverage(messages, dbc: str, path, minimum: float = MIN_EXPLAINED_SHARE) -> tuple[int, float]:
    """``coverage``, refusing a log the DBC explains less than ``minimum`` of."""
    if not 0 <= minimum <= 1:
        raise KeidriveError(f"{minimum:g}: must be a share from 0 to 1", option="min_explained")
    unknown, share = coverage(messages, dbc)
    if share < minimum:
        raise KeidriveError(
            f"{path}: {Path(dbc).stem} explains only {share * 100:.1f} % of the log's frames ({unknown} unknown; "
            f"at least {minimum * 100:.0f} % needed): a log of another car, or pass the right {{dbc}} "
            "({min_explained} for a bus that also carries other traffic)", mentions=("dbc", "min_explained"),
        )
    return unknown, share


def require_same_drive(truth: dict, dbc: str, log: DriveLog, path) -> None:
    """Refuse a ground truth of another vehicle or cycle than the log: its
    vehicle's DBC must be the log's, its duration the log's (at least, for
    a log that was cut)."""
    from .. import sim

    try:
        truth_dbc = Path(sim.load_vehicle(truth.get("vehicle", "")).dbc).stem
    except KeidriveError:
        truth_dbc = None  # the user's own vehicle TOML, not here: the duration still tells
    if truth_dbc is not None and truth_dbc != Path(dbc).stem:
        raise KeidriveError(
            f"truth {path} is of {truth['vehicle']} ({truth_dbc}), the log of a {Path(dbc).stem} car"
        )
    stamps = [m.timestamp for m in log.messages]
    span = max(stamps) - min(stamps)
    duration = truth.get("duration_s")
    if not isinstance(duration, (int, float)):
        return
    off = span - duration if log.truncated else abs(span - duration)
    if off > max(DURATION_TOLERANCE_S, 0.02 * duration):
        raise KeidriveError(
            f"truth {path} ({truth.get('vehicle')} on {truth.get('cycle')}) lasts {duration:.0f} s, "
            f"the log {span:.0f} s: not the same drive"
        )
