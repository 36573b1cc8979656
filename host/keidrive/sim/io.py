"""Writing simulated traffic to python-can log files or a live bus.

``write_log(result, path)`` picks the python-can writer by suffix (``.asc``,
``.blf``, ``.log`` candump, ``.trc``, ``.csv``, plus whatever else
``can.Logger`` knows, e.g. ``.mf4`` with asammdf, ``.db``, ``.txt``; a
compressed ``.gz`` variant works too). ``stream(result, "INTERFACE:CHANNEL")``
sends the frames on a python-can bus at the recorded pace.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import KeidriveError

LOG_SUFFIXES = (".asc", ".blf", ".log", ".trc", ".csv")
# Writers python-can lists but that need a package of their own.
OPTIONAL_WRITERS = {".mf4": "asammdf"}


def _known_suffixes():
    try:
        from can.io.logger import MESSAGE_WRITERS
        return tuple(MESSAGE_WRITERS)
    except Exception:  # pragma: no cover - python-can internals moved
        return LOG_SUFFIXES


def check_output_path(path) -> Path:
    """Raise KeidriveError for an unknown suffix or an unwritable location."""
    from importlib.util import find_spec

    from ..io.drivelog import log_suffix

    path = Path(path)
    suffix = log_suffix(path)
    known = _known_suffixes()
    if suffix not in known:
        raise KeidriveError(f"cannot write {path}: unknown log format {suffix or '(no suffix)'!r}; "
                            f"use one of {', '.join(known)}")
    package = OPTIONAL_WRITERS.get(suffix)
    if package is not None and find_spec(package) is None:
        raise KeidriveError(f"cannot write {path}: python-can's {suffix} writer needs {package} (pip install {package})")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise KeidriveError(f"cannot write {path}: directory {parent} does not exist")
    if path.is_dir():
        raise KeidriveError(f"cannot write {path}: is a directory")
    if (path.exists() and not os.access(path, os.W_OK)) or (not path.exists() and not os.access(parent, os.W_OK)):
        raise KeidriveError(f"cannot write {path}: permission denied")
    return path


def write_log(result, path) -> int:
    """Write all frames of ``result`` to ``path``; returns the frame count."""
    import can

    path = check_output_path(path)
    try:
        writer = can.Logger(str(path))
    except (OSError, ValueError, ImportError) as e:
        raise KeidriveError(f"cannot write {path}: {e}") from None
    n = 0
    try:
        for msg in result.messages():
            writer.on_message_received(msg)
            n += 1
    except OSError as e:
        raise KeidriveError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        writer.stop()
    return n


def stream(result, spec: str, speed: float | None = 1.0, bus=None, on_frame=None) -> dict:
    """Send the frames on ``INTERFACE:CHANNEL`` (or an open ``bus``) at
    ``speed`` times the recorded pace (None: as fast as possible); returns
    the frame count and the pace's timing error. ``on_frame(count)``: see
    ``keidrive.drive.busio.play``."""
    from ..drive.busio import open_bus, play  # python-can, only when a bus is used

    own = bus is None
    if own:
        bus = open_bus(spec)
    try:
        return play(bus, result.messages(), speed=speed, on_frame=on_frame)
    finally:
        if own:
            bus.shutdown()
