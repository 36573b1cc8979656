"""A recorded drive log into the firmware: ``keidrive.replay(log)``.

The log is read once (a cut log up to the cut), its frames spooled to a
temporary file as they are read (``io.drivelog``: a log of any length in
the same memory), held to the vehicle DBC that explains it (a log of
another car is refused, not reported as an empty trip) and to a ground
truth when one is given, then its frames go to the firmware a piece at a
time, which integrates on their own timestamps whatever the pace.
``keidrive replay`` and ``keidrive fleet`` replay through here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import KeidriveError
from ..io.drivelog import MIN_EXPLAINED_SHARE
from .spec import DEFAULT_PROFILE, DEFAULT_RUNTIME, check_pace, resolve_dbc
from .trip import Trip


class LogReplay:
    """A replay checked and ready: the log read and explained, every setting
    validated, before the firmware starts (see ``replay`` for the settings)."""

    def __init__(self, log: str | Path, *, profile: str = DEFAULT_PROFILE, dbc: str | Path | None = None,
                 roles: str | Path | None = None, runtime: str = DEFAULT_RUNTIME, bus: str | None = None,
                 pace: float | None = None, min_explained: float = MIN_EXPLAINED_SHARE,
                 truth: dict | str | Path | None = None, nmea: str | Path | None = None,
                 nmea_offset: float | None = None):
        from ..fwconfig import require_profile
        from ..io.drivelog import guess_vehicle_dbc, read_drive_log, require_coverage, require_same_drive
        from .harness import firmware_command

        self.path = Path(log)
        self.profile = require_profile(profile)
        self.runtime, self.bus = runtime, bus
        truth_name = str(truth) if isinstance(truth, (str, Path)) else "(given)"
        self.truth = load_truth(truth) if isinstance(truth, (str, Path)) else truth
        self.pace = check_pace(pace, bus)
        bundled, self.dbc, self.roles = resolve_dbc(dbc, roles)
        if roles is None:
            self.roles = None  # the bundled firmware decodes its own DBCs: nothing to compile
        self.log = read_drive_log(log)  # read once, its frames spooled to disk (read back as the replay goes)
        self.nmea = None  # the GNSS capture's lines on the log's timeline
        if nmea is not None:
            from ..gps.replay import place

            self.nmea = place(nmea, self.log.messages.first_s, self.log.messages.last_s, nmea_offset)
        self.log_dbc = str(dbc) if dbc is not None else guess_vehicle_dbc(self.log.messages, log)
        self.unknown_frames, self.explained_share = require_coverage(self.log.messages, self.log_dbc, log,
                                                                     min_explained)
        if self.truth is not None:
            require_same_drive(self.truth, self.log_dbc, self.log, truth_name)
        self.executable = firmware_command(runtime)[0]  # a missing runtime fails before the replay
        self.vehicle_dbc = bundled if self.roles is None and bundled else Path(self.log_dbc).stem
        self.notes = []  # what cannot be computed, said before the replay
        if self.roles is not None:
            from .byodbc import missing_figures

            self.notes = missing_figures(self.roles)

    @property
    def title(self) -> str:
        return f"replay of {self.path.name}"

    @property
    def duration_s(self) -> float:
        return self.log.span_s

    def run(self, *, on_event=None) -> Trip:
        """Replay: ``on_event(event)`` gets every telemetry line as the
        firmware prints it; the trip's report keeps at most
        ``harness.PLOT_STATUSES`` status lines (thinned evenly) and every
        other line. A firmware that fails raises with its reason."""
        from ..fwconfig import require_valid
        from .harness import PLOT_STATUSES, feed_over_bus, firmware_config

        started = time.perf_counter()
        records = self.log.messages.records()  # read back from the log's spool as the replay goes
        frames = len(records)
        gps = {}
        if self.nmea is not None:  # the GNSS module's capture among the frames, into the GPS UART
            from ..gps.replay import with_nmea

            records = with_nmea(records, self.nmea)
            gps = {"gps": True}
        # The firmware integrates on the frames' own time (virtual clock); the
        # pace only spaces their delivery, so it never rescales the trip.
        feed = dict(bus=self.bus, runtime=self.runtime, realtime=self.pace is not None, speed=self.pace,
                    clock="virtual", on_event=on_event, status_limit=PLOT_STATUSES)
        if self.roles is None:
            config = require_valid({**firmware_config(self.vehicle_dbc, self.profile), **gps})
            firmware, figures = feed_over_bus(records, config, **feed)
        else:  # the DBC compiled with its roles into a copy of the firmware tree, as a simulated drive does
            import tempfile

            from . import byodbc

            with tempfile.TemporaryDirectory(prefix="keidrive-dbc-") as folder:
                tree, name, _ = byodbc.build_tree(self.dbc, self.roles, Path(folder))
                config = require_valid({"profile": self.profile, **gps})
                firmware, figures = feed_over_bus(records, {**config, "vehicle": name}, tree=tree, **feed)
        if not firmware.ok:
            raise KeidriveError(firmware.failure())
        log = {"dbc": self.vehicle_dbc, "unknown_frames": self.unknown_frames,
               "explained_share": self.explained_share, "truncated": self.log.truncated}
        return Trip(self.title, self.profile, self.truth, firmware.trip, firmware, frames,
                    time.perf_counter() - started, self.executable, config=config, bus=figures, log=log,
                    notes=list(self.notes))


def replay(log: str | Path, *, profile: str = DEFAULT_PROFILE, dbc: str | Path | None = None,
           roles: str | Path | None = None, runtime: str = DEFAULT_RUNTIME, bus: str | None = None,
           pace: float | None = None, min_explained: float = MIN_EXPLAINED_SHARE,
           truth: dict | str | Path | None = None, nmea: str | Path | None = None, nmea_offset: float | None = None,
           on_event=None) -> Trip:
    """Replay the drive log ``log`` (any format python-can reads) into the firmware.

    ``dbc``: the log's vehicle DBC (default: the bundled one whose messages
    the log carries), or your car's DBC file with its ``roles`` file;
    ``min_explained``: the share of the log's frames the DBC must explain;
    ``truth``: a ground truth to hold the log to (the JSON of ``keidrive
    simulate --json``, or its file); ``pace``: None, as fast as the firmware takes
    them, N, N times the recorded pace; ``profile``, ``runtime``, ``bus`` as
    in ``DriveSpec``; ``nmea``: a GNSS module's NMEA capture beside the
    log, into the firmware's GPS UART among the frames (``nmea_offset``:
    log time = the capture's UTC time + it; see keidrive.gps.replay)."""
    return LogReplay(log, profile=profile, dbc=dbc, roles=roles, runtime=runtime, bus=bus, pace=pace,
                     min_explained=min_explained, truth=truth, nmea=nmea, nmea_offset=nmea_offset).run(on_event=on_event)


def load_truth(path: str | Path) -> dict:
    """A ground truth written by ``keidrive simulate --json``."""
    try:
        truth = json.loads(Path(path).read_text())
    except OSError as error:
        raise KeidriveError(f"cannot read truth {path}: {error.strerror}") from None
    except ValueError as error:
        raise KeidriveError(f"truth {path} is not JSON: {error}") from None
    if not isinstance(truth, dict) or "distance_km" not in truth:
        raise KeidriveError(f"truth {path} is not the JSON of keidrive simulate --json")
    return truth
