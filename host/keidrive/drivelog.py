"""Reading a recorded drive log, and telling which vehicle DBC it speaks."""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import can
import cantools

from .errors import KeidriveError
from .paths import dbc_dir

# The firmware's own frames say nothing about the vehicle.
FIRMWARE_DBC = "keidrive_fw.dbc"


def read_log(path: str | Path) -> list[can.Message]:
    """Every frame of a log python-can reads, in file order; one clear error
    for a missing, unreadable, unknown-format or empty log."""
    path = Path(path)
    if not path.is_file():
        raise KeidriveError(f"{path}: no such log file")
    try:
        messages = [msg for msg in can.LogReader(str(path))]
    except ValueError as error:
        raise KeidriveError(f"{path}: cannot read this log ({error})") from None
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise KeidriveError(f"{path}: cannot read this log ({error})") from None
    except Exception as error:  # python-can's readers raise whatever their parsers hit
        raise KeidriveError(f"{path}: not a readable {path.suffix or 'log'} file ({type(error).__name__}: {error})") from None
    if not messages:
        raise KeidriveError(f"{path}: the log holds no frames")
    return messages


@cache
def vehicle_ids() -> dict[str, frozenset]:
    """Frame keys (id, extended) each vehicle DBC defines."""
    known = {}
    for dbc in sorted(dbc_dir().glob("*.dbc")):
        if dbc.name == FIRMWARE_DBC:
            continue
        database = cantools.database.load_file(str(dbc))
        known[dbc.stem] = frozenset((m.frame_id, m.is_extended_frame) for m in database.messages)
    return known


def guess_vehicle_dbc(messages, path="log") -> str:
    """The vehicle DBC whose messages carry most of the log's frames."""
    seen = Counter((m.arbitration_id, m.is_extended_id) for m in messages if not m.is_error_frame)
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
