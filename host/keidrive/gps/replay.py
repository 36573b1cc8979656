"""``keidrive replay LOG --nmea FILE``: a GNSS module's capture beside the CAN
log, into the firmware as UART records among the frames.

The capture is what the module's UART gave, line by line (``cat
/dev/ttyUSB0 > drive.nmea``): every line goes to the firmware as it was,
broken ones too (the reader counts what it refuses). A line's time is the
UTC time of the last RMC, GGA, GLL or ZDA sentence at or before it (with the
RMC's date). How that maps onto the log's timeline: ``--nmea-offset S``
(log time = UTC time + S, for logs stamped in epoch seconds and a logger
whose clock was off); by default, a log stamped in epoch seconds is taken
as UTC (offset 0), any other log has the capture's first time at its first
frame.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from pathlib import Path

from ..errors import KeidriveError

TIMED = (b"RMC", b"GGA", b"GLL", b"ZDA")
EPOCH_LOG_S = 1e9  # log timestamps beyond this are epoch seconds (2001 on)


def _time_of(line: bytes, day: _dt.date | None):
    """(seconds since the epoch or since midnight, the date) of a sentence's
    own time, or (None, day) when it has none."""
    fields = line.split(b"*")[0].split(b",")
    kind = fields[0][3:6] if len(fields[0]) >= 6 else b""
    if kind not in TIMED or len(fields) < 2 or len(fields[1]) < 6:
        return None, day
    try:
        text = fields[1].decode()
        seconds = int(text[0:2]) * 3600 + int(text[2:4]) * 60 + float(text[4:])
        if kind == b"RMC" and len(fields) > 9 and len(fields[9]) == 6:
            d = fields[9].decode()
            day = _dt.date(2000 + int(d[4:6]), int(d[2:4]), int(d[0:2]))
        if kind == b"ZDA" and len(fields) > 4:
            day = _dt.date(int(fields[4]), int(fields[3]), int(fields[2]))
    except (ValueError, UnicodeError):
        return None, day
    if day is None:
        return seconds, None
    midnight = _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.UTC)
    return midnight.timestamp() + seconds, day


def read_capture(path) -> list[tuple[float | None, bool, bytes]]:
    """[(time s, whether it is epoch seconds, the line with CR LF)] of the capture."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise KeidriveError(f"{path}: cannot read it ({error.strerror})", option="nmea") from None
    out = []
    day = None
    last = None
    for line in raw.splitlines():
        if not line.strip():
            continue
        t, day = _time_of(line.strip(), day)
        if t is not None:
            last = (t, day is not None)
        out.append((last[0] if last else None, last[1] if last else False, line.strip() + b"\r\n"))
    if not any(t is not None for t, _, _ in out):
        raise KeidriveError(f"{path}: no sentence with a time in it (RMC, GGA, GLL or ZDA): not an NMEA capture",
                            option="nmea")
    first = next(item for item in out if item[0] is not None)
    return [(first[0], first[1], line) if t is None else (t, epoch, line) for t, epoch, line in out]


def place(path, log_start_s: float, log_end_s: float, offset: float | None = None) -> list[tuple[float, bytes]]:
    """[(time s on the log's timeline, line)] of the capture at ``path``, for
    a log from ``log_start_s`` to ``log_end_s``: refused, before any work, when
    it is no capture or its times cannot be put on the log's."""
    capture = read_capture(path)
    if offset is None:
        epoch = all(e for t, e, _ in capture)
        if log_start_s > EPOCH_LOG_S:
            if not epoch:
                raise KeidriveError(f"{path}: the log is stamped in epoch seconds but the capture has no "
                                    "date (RMC or ZDA): give {nmea_offset}", option="nmea", mentions=("nmea_offset",))
            offset = 0.0
        else:
            offset = log_start_s - capture[0][0]
    times = [t + offset for t, _, _ in capture]
    if times[-1] < log_start_s or times[0] > log_end_s:
        raise KeidriveError(f"{path}: its times ({times[0]:.0f}..{times[-1]:.0f} s on the log's timeline) "
                            "do not overlap the log's: give {nmea_offset}", option="nmea", mentions=("nmea_offset",))
    return [(max(t, 0.0), line) for t, (_, _, line) in zip(times, capture)]


def with_nmea(pieces, timed: list[tuple[float, bytes]]):
    """The log's records, a piece at a time as they are read back
    (``LogFrames.records``), with the capture's lines (``place``) among them
    as UART records, in time order: a line goes out with the piece whose
    frames it comes before (put together, ``nmea.merge`` of the whole log
    and capture, for a log in time order)."""
    from .nmea import interleave, uart_records

    uart = uart_records(timed)
    lines = itertools.chain([uart], itertools.repeat(uart[:0]))  # all of them with the first piece
    # due: the piece's latest frame (a later piece of a log in time order starts there or after)
    return interleave((piece, capture, int(piece["timestamp_us"].max(initial=0)))
                      for piece, capture in zip(pieces, lines))
