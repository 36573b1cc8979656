"""The fleet's DuckDB file: one row per drive in ``trips``, one per warning
event in ``warnings``, one per ``keidrive fleet`` invocation in ``runs``.
Re-running appends under a new run id; ``export_parquet`` writes a run's
rows as Parquet for other tools."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from ..errors import KeidriveError
from . import INSTALL_HINT

DEFAULT_DB = "keidrive-fleet.duckdb"

# (column, DuckDB type) of ``trips``, after run_id and trip_id.
TRIP_COLUMNS = (
    ("input", "VARCHAR"),  # the log, or vehicle/cycle of a simulated drive
    ("kind", "VARCHAR"),  # run (simulated) or replay (a log)
    ("vehicle", "VARCHAR"),  # preset, or the vehicle DBC of a log
    ("cycle", "VARCHAR"),
    ("profile", "VARCHAR"),
    ("runtime", "VARCHAR"),
    ("options", "VARCHAR"),  # options passed through to run / replay
    ("firmware_version", "VARCHAR"),
    ("ok", "BOOLEAN"),
    ("error", "VARCHAR"),
    ("attempts", "INTEGER"),
    ("frames", "BIGINT"),
    ("distance_km", "DOUBLE"),
    ("fuel_l", "DOUBLE"),
    ("energy_kwh", "DOUBLE"),
    ("km_per_l", "DOUBLE"),
    ("wh_per_km", "DOUBLE"),
    ("eco_score", "INTEGER"),
    ("warnings", "INTEGER"),
    ("warnings_by_kind", "MAP(VARCHAR, INTEGER)"),
    ("truth_distance_km", "DOUBLE"),
    ("truth_fuel_l", "DOUBLE"),
    ("truth_energy_kwh", "DOUBLE"),
    ("truth_km_per_l", "DOUBLE"),
    ("wall_s", "DOUBLE"),
    ("worker", "VARCHAR"),
    # data quality (the trip line's quality object, docs/firmware.md)
    ("fallback_s", "DOUBLE"),  # distance from a fallback speed source: for so long
    ("fallback_km", "DOUBLE"),
    ("untrusted_s", "DOUBLE"),  # no trusted speed: no distance counted
    ("rejected_frames", "MAP(VARCHAR, BIGINT)"),  # by reason
    ("faulty_sources", "MAP(VARCHAR, VARCHAR)"),  # source -> reason
    ("not_measured", "VARCHAR[]"),  # figures that could not be computed
)
_MAPS = {name: kind[4:-1].split(", ") for name, kind in TRIP_COLUMNS if kind.startswith("MAP(")}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, started_at TIMESTAMP, command VARCHAR, scheduler VARCHAR, workers INTEGER,
    trips INTEGER, failed INTEGER, wall_s DOUBLE
);
CREATE TABLE IF NOT EXISTS trips (
    run_id INTEGER, trip_id INTEGER, {", ".join(f"{name} {kind}" for name, kind in TRIP_COLUMNS)},
    PRIMARY KEY (run_id, trip_id)
);
CREATE TABLE IF NOT EXISTS warnings (
    run_id INTEGER, trip_id INTEGER, input VARCHAR, kind VARCHAR, level VARCHAR, start_s DOUBLE, end_s DOUBLE
);
"""


def connect(path: str | Path, read_only: bool = False, schema: str = SCHEMA, what: str = "fleet",
            install: str = INSTALL_HINT):
    """The database at ``path`` (created with ``schema`` unless read-only,
    and the fleet's ``trips`` columns a file of an older keidrive lacks
    added); one clear error for a missing, foreign or locked file. ``what``
    names it in those errors (``fleet``, or ``collect`` for keidrive collect's)."""
    try:
        import duckdb
    except ImportError:
        raise KeidriveError(f"keidrive {what} needs DuckDB: {install}") from None

    path = Path(path)
    if read_only and not path.is_file():
        raise KeidriveError(f"{path}: no such {what} database (run keidrive {what} --db {path} first)")
    if not read_only and not path.parent.is_dir():
        raise KeidriveError(f"cannot write {path}: directory {path.parent} does not exist")
    try:
        db = duckdb.connect(str(path), read_only=read_only)
        if not read_only:
            db.execute(schema)
            if schema == SCHEMA:
                for name, kind in TRIP_COLUMNS:
                    db.execute(f"ALTER TABLE trips ADD COLUMN IF NOT EXISTS {name} {kind}")
        elif not ({"runs", "trips", "warnings"} <= (tables := {row[0] for row in db.execute("SHOW TABLES").fetchall()})
                  or {"devices", "trips", "warnings"} <= tables):
            db.close()
            raise KeidriveError(f"{path}: a DuckDB file, but not one keidrive fleet or keidrive collect wrote")
    except duckdb.Error as error:
        raise KeidriveError(f"{path}: cannot open as a {what} database ({str(error).splitlines()[0]})") from None
    return db


def begin_run(db, command: str, scheduler: str, workers: int) -> int:
    run_id = db.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()[0]
    db.execute(
        "INSERT INTO runs (run_id, started_at, command, scheduler, workers) VALUES (?, ?, ?, ?, ?)",
        [run_id, datetime.datetime.now(datetime.UTC).replace(tzinfo=None), command, scheduler, workers],
    )
    return run_id


# Rows go in as columns (one list per column, unnested in step): DuckDB's
# cost is per statement, tens of milliseconds, and next to nothing per row.
# A MAP column goes in as two lists per row, its keys and its values.
_SELECTED = ", ".join(f"map({name}_k, {name}_v)" if name in _MAPS else name for name, _ in TRIP_COLUMNS)
_INSERT_TRIPS = (
    f"INSERT INTO trips (run_id, trip_id, {', '.join(name for name, _ in TRIP_COLUMNS)}) "
    f"SELECT ?, trip_id, {_SELECTED} "
    "FROM (SELECT unnest(?::INTEGER[]) AS trip_id, "
    + ", ".join(f"unnest(?::{_MAPS[name][0]}[][]) AS {name}_k, unnest(?::{_MAPS[name][1]}[][]) AS {name}_v"
                if name in _MAPS else f"unnest(?::{kind}[]) AS {name}" for name, kind in TRIP_COLUMNS)
    + ")"
)
_WARNING_COLUMNS = (("trip_id", "INTEGER"), ("input", "VARCHAR"), ("kind", "VARCHAR"), ("level", "VARCHAR"),
                    ("start_s", "DOUBLE"), ("end_s", "DOUBLE"))
_INSERT_WARNINGS = (
    "INSERT INTO warnings SELECT ?, * FROM (SELECT "
    + ", ".join(f"unnest(?::{kind}[]) AS {name}" for name, kind in _WARNING_COLUMNS) + ")"
)


def add_trips(db, run_id: int, trips: list[tuple[int, dict]]) -> None:
    """Drives' rows (trip id, row) and their warning events, in one
    transaction."""
    if not trips:
        return
    columns = [[trip_id for trip_id, _ in trips]]
    for name, _ in TRIP_COLUMNS:
        if name in _MAPS:
            keys = [None if row[name] is None else sorted(row[name]) for _, row in trips]
            columns += [keys, [None if names is None else [row[name][key] for key in names]
                               for (_, row), names in zip(trips, keys)]]
        else:
            columns.append([row[name] for _, row in trips])
    events = [(trip_id, row["input"], event) for trip_id, row in trips for event in row["warning_events"]]
    warnings = [[trip_id for trip_id, _, _ in events], [source for _, source, _ in events]] + [
        [event[name] for _, _, event in events] for name in ("kind", "level", "start_s", "end_s")]
    db.execute("BEGIN")
    db.execute(_INSERT_TRIPS, [run_id, *columns])
    if events:
        db.execute(_INSERT_WARNINGS, [run_id, *warnings])
    db.execute("COMMIT")


class TripWriter:
    """Trips stored as they arrive, in batches: every ``flush_rows`` rows or
    once ``flush_s`` has passed since the last write, and on ``flush``. A
    run stopped part-way keeps every trip stored by then."""

    def __init__(self, db, run_id: int, flush_rows: int = 500, flush_s: float = 1.0):
        self.db, self.run_id, self.flush_rows, self.flush_s = db, run_id, flush_rows, flush_s
        self.pending: list = []
        self.written_at = time.monotonic()

    def add(self, trip_id: int, row: dict) -> None:
        self.pending.append((trip_id, row))
        if len(self.pending) >= self.flush_rows or time.monotonic() - self.written_at >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        add_trips(self.db, self.run_id, self.pending)
        self.pending = []
        self.written_at = time.monotonic()


def finish_run(db, run_id: int, trips: int, failed: int, wall_s: float) -> None:
    db.execute("UPDATE runs SET trips = ?, failed = ?, wall_s = ? WHERE run_id = ?", [trips, failed, wall_s, run_id])


def export_parquet(db, run_id: int, directory: str | Path) -> list[Path]:
    """``trips-run<ID>.parquet`` and ``warnings-run<ID>.parquet`` in ``directory``."""
    directory = parquet_dir(directory)
    written = []
    for table in ("trips", "warnings"):
        target = directory / f"{table}-run{run_id}.parquet"
        literal = str(target).replace("'", "''")
        db.execute(f"COPY (SELECT * FROM {table} WHERE run_id = {int(run_id)} ORDER BY trip_id) "
                   f"TO '{literal}' (FORMAT parquet)")
        written.append(target)
    return written


def parquet_dir(directory: str | Path) -> Path:
    """``directory``, made if need be: checked before the drives, used after."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise KeidriveError(f"cannot write Parquet to {directory}: {error.strerror}") from None
    return directory


def latest_run(db) -> int:
    run_id = db.execute("SELECT max(run_id) FROM runs").fetchone()[0]
    if run_id is None:
        raise KeidriveError("the fleet database holds no run yet")
    return run_id


def require_run(db, run_id: int) -> int:
    if "runs" not in {row[0] for row in db.execute("SHOW TABLES").fetchall()}:
        raise KeidriveError("collected trips have no runs to compare or plot (keidrive fleet report --db alone "
                            "summarises them)")
    if db.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0] == 0:
        known = [row[0] for row in db.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]
        raise KeidriveError(f"no run {run_id} in the fleet database (runs: {', '.join(map(str, known)) or 'none'})")
    return run_id
