"""Reading a recorded drive log, and telling which vehicle DBC it speaks.

A log is read once, as it goes: its frames go to a spool of 24-byte records
on disk (a temporary file, gone with the log) and what replay must know
before a drive (frames per identifier, the time span, where the log was cut)
is counted on the way, so a log of any length is read in the same memory.

A log cut short (the logger lost power mid-line or mid-container) is read up
to what is whole, and the cut is reported with its position instead of
refusing the whole drive or replaying part of it without a word. Reads are
bounded: a text line longer than ``MAX_LINE_BYTES``, a ``.gz`` that inflates
beyond ``MAX_GZIP_RATIO`` times its size or a log of more than
``MAX_IDENTIFIERS`` distinct identifiers is refused in one line, and only a
regular file is read (a directory, FIFO or device is named for what it is).
"""

from __future__ import annotations

import gzip
import os
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import can
import cantools
import numpy as np

from ..errors import KeidriveError
from ..paths import dbc_dir
from . import record

# The firmware's own frames say nothing about the vehicle.
FIRMWARE_DBC = "keidrive_fw.dbc"
# Below this share of a log's frames defined by its DBC, the log is of
# another car (or the DBC is): a replay would report an empty trip as right.
MIN_EXPLAINED_SHARE = 0.5
# A truth whose duration differs from the log's by more than this is of another drive.
DURATION_TOLERANCE_S = 2.0
LINE_FORMATS = (".asc", ".log", ".trc", ".csv")
# A frame's line in any text format is well under 1 KiB (a CAN FD frame in ASC about 400 bytes).
MAX_LINE_BYTES = 16 * 1024
# Text logs gzip 5 to 10 times; far beyond that it is not a log (and inflating it costs time and disk).
MAX_GZIP_RATIO = 100
# A bus uses at most 2048 standard identifiers and, in practice, a few thousand extended ones.
MAX_IDENTIFIERS = 1 << 16
SPOOL_RECORDS = 20_000  # frames converted and spooled, or read back, at a time


class LogFrames:
    """The frames of a drive log: python-can Messages read back from its
    spool each time they are iterated (nothing held in memory), and
    ``records()`` the spool's records a piece at a time. ``len`` is the
    frame count, ``frame_keys`` the frames per (identifier, extended) (error
    frames left out), ``first_s`` and ``last_s`` the earliest and latest
    timestamp."""

    def __init__(self, spool, count: int, frame_keys: Counter, first_s: float, last_s: float):
        self._spool = spool
        self.count = count
        self.frame_keys = frame_keys
        self.first_s = first_s
        self.last_s = last_s

    def __len__(self) -> int:
        return self.count

    def records(self) -> SpooledRecords:
        """The records, ``SPOOL_RECORDS`` at a time, in file order."""
        return SpooledRecords(self)

    def _pieces(self):
        size = SPOOL_RECORDS * record.SIZE
        for offset in range(0, self.count * record.SIZE, size):
            yield np.frombuffer(os.pread(self._spool.fileno(), size, offset), record.DTYPE)

    def __iter__(self):
        for piece in self._pieces():
            yield from record.to_messages(piece)


class SpooledRecords:
    """A log's records as consecutive arrays (``harness.feed_over_bus``
    takes them so); ``len`` the records in all."""

    def __init__(self, frames: LogFrames):
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self):
        return self._frames._pieces()


@dataclass
class DriveLog:
    messages: LogFrames
    # None for a whole log; else where it was cut: frames_read, and line and
    # byte (text formats) or byte and expected_bytes (BLF).
    truncated: dict | None = None

    @property
    def span_s(self) -> float:
        return self.messages.last_s - self.messages.first_s

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
    return list(read_drive_log(path).messages)


def read_drive_log(path: str | Path) -> DriveLog:
    """The frames of a log python-can reads, and where it was cut if it was;
    one clear error for a missing, unreadable, unknown-format, corrupt,
    oversized or empty log, or one that is not a regular file."""
    path = Path(path)
    _require_regular_file(path)
    suffix = log_suffix(path)
    census = _Census(path)
    try:
        if suffix in LINE_FORMATS:
            truncated = _read_lines(path, suffix, census)
        elif suffix == ".blf" and path.suffix.lower() == ".blf":
            truncated = _read_blf(path, census)
        else:
            truncated = None
            for msg in can.LogReader(str(path)):
                census.add(msg)
        frames = census.finish()
    except KeidriveError:
        census.close()
        raise
    except (ValueError, OSError, UnicodeDecodeError, EOFError) as error:
        census.close()
        raise KeidriveError(f"{path}: cannot read this log ({error})") from None
    except Exception as error:  # python-can's readers raise whatever their parsers hit
        census.close()
        raise KeidriveError(f"{path}: not a readable {path.suffix or 'log'} file ({type(error).__name__}: {error})") from None
    if not len(frames):
        census.close()
        raise KeidriveError(f"{path}: the log holds no frames")
    if truncated is not None:
        truncated = {"frames_read": len(frames), **truncated}
    return DriveLog(frames, truncated)


def _require_regular_file(path: Path) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        broken = " (a symbolic link to nothing)" if os.path.islink(path) else ""
        raise KeidriveError(f"{path}: no such log file{broken}") from None
    except OSError as error:
        raise KeidriveError(f"{path}: cannot read this log ({error.strerror})") from None
    mode = info.st_mode
    kind = ("a directory" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else None)
    if kind is not None:
        raise KeidriveError(f"{path}: {kind}, not a log file")


class _Census:
    """Frames as they are read: converted to records and spooled a batch at
    a time, counted per identifier, their earliest and latest timestamps."""

    def __init__(self, path: Path):
        self.path = path
        self.spool = tempfile.TemporaryFile(prefix="keidrive-log-")
        self.batch: list = []
        self.count = 0
        self.keys: Counter = Counter()
        self.first_us = self.last_us = None

    def add(self, msg) -> None:
        self.batch.append(msg)
        if len(self.batch) >= SPOOL_RECORDS:
            self._spool()

    def _spool(self) -> None:
        if not self.batch:
            return
        records = record.from_messages(self.batch)
        self.batch = []
        self.spool.write(records.tobytes())
        self.count += len(records)
        stamps = records["timestamp_us"]
        low, high = int(stamps.min()), int(stamps.max())
        self.first_us = low if self.first_us is None else min(self.first_us, low)
        self.last_us = high if self.last_us is None else max(self.last_us, high)
        frames = records[(records["flags"] & record.FLAG_ERROR) == 0]
        keys = frames["can_id"].astype(np.uint64) << np.uint64(1) | (frames["flags"] & record.FLAG_EXTENDED)
        for key, count in zip(*np.unique(keys, return_counts=True)):
            self.keys[int(key) >> 1, bool(key & 1)] += int(count)
        if len(self.keys) > MAX_IDENTIFIERS:
            raise KeidriveError(f"{self.path}: more than {MAX_IDENTIFIERS} distinct CAN identifiers: not a drive log "
                                "of one bus")

    def finish(self) -> LogFrames:
        self._spool()
        self.spool.flush()
        first, last = (self.first_us or 0) / 1e6, (self.last_us or 0) / 1e6
        return LogFrames(self.spool, self.count, self.keys, first, last)

    def close(self) -> None:
        self.spool.close()


class _CountedLines:
    """A text file for python-can's line readers that knows the line number
    and byte offset of the line being parsed (exact for any line ending),
    and holds reading to its bounds: ``MAX_LINE_BYTES`` a line, ``limit``
    bytes in all (a ``.gz``). python-can's readers may catch what a read
    raises, so a bound that is hit is also kept in ``refused``."""

    def __init__(self, raw, path: Path, suffix: str, limit: int | None):
        self._raw = raw
        self.path = path
        self.suffix = suffix
        self.limit = limit
        self.line = 0
        self.start = 0
        self._offset = 0
        self.refused: KeidriveError | None = None

    def _refuse(self, why: str):
        self.refused = KeidriveError(f"{self.path}: {why}")
        raise self.refused

    def readline(self, *_):
        data = self._raw.readline(MAX_LINE_BYTES + 1)
        if len(data) > MAX_LINE_BYTES:
            self._refuse(f"line {self.line + 1} is longer than {MAX_LINE_BYTES} bytes: not a {self.suffix} drive log")
        if data:
            self.line += 1
            self.start, self._offset = self._offset, self._offset + len(data)
            if self.limit is not None and self._offset > self.limit:
                self._refuse(f"inflates to more than {MAX_GZIP_RATIO} times its size ({self.limit} bytes read): "
                             "not a drive log")
        return data.decode("utf-8", "replace").replace("\r\n", "\n")

    def __iter__(self):
        return self

    def __next__(self):
        text = self.readline()
        if not text:
            raise StopIteration
        return text

    def rest_is_blank(self) -> bool:
        """Whether nothing but whitespace follows (read in bounded pieces)."""
        while chunk := self._raw.read(64 * 1024):
            self._offset += len(chunk)
            if self.limit is not None and self._offset > self.limit:
                return False
            if chunk.strip():
                return False
        return True

    def close(self):
        self._raw.close()


def _read_lines(path: Path, suffix: str, census: _Census) -> dict | None:
    from can.io.player import MESSAGE_READERS

    compressed = path.suffix.lower() == ".gz"
    limit = MAX_GZIP_RATIO * max(path.stat().st_size, 1) if compressed else None
    lines = _CountedLines((gzip.open if compressed else open)(path, "rb"), path, suffix, limit)
    try:
        for msg in MESSAGE_READERS[suffix](lines):
            census.add(msg)
    except Exception as error:  # the reader's parse error on the line it was given
        if lines.refused is not None:
            raise lines.refused from None
        line, start = lines.line, lines.start
        if not lines.rest_is_blank():
            raise KeidriveError(f"{path}: line {line}: not a {suffix} frame ({type(error).__name__}: {error})") from None
        # The bad line is the last one: the log was cut there.
        return {"line": line, "byte": start}
    finally:
        lines.close()
    if lines.refused is not None:
        raise lines.refused
    return None


def _read_blf(path: Path, census: _Census) -> dict | None:
    from can.io.blf import BLFReader

    reader = BLFReader(str(path))
    expected = reader.file_size
    try:
        for msg in reader:
            census.add(msg)
    except KeidriveError:
        raise
    except Exception:  # a cut inside an object or a compressed container
        pass
    finally:
        reader.stop()
    size = os.path.getsize(path)
    # python-can's BLFReader stops quietly where the file ends; the header
    # (rewritten when the logger closes the file) says where it should, and
    # a logger that lost power never rewrote it.
    if size != expected:
        return {"byte": size, "expected_bytes": expected}
    return None


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
    if isinstance(messages, LogFrames):
        return messages.frame_keys  # counted as the log was read
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
    span = log.span_s
    duration = truth.get("duration_s")
    if not isinstance(duration, (int, float)):
        return
    off = span - duration if log.truncated else abs(span - duration)
    if off > max(DURATION_TOLERANCE_S, 0.02 * duration):
        raise KeidriveError(
            f"truth {path} ({truth.get('vehicle')} on {truth.get('cycle')}) lasts {duration:.0f} s, "
            f"the log {span:.0f} s: not the same drive"
        )
