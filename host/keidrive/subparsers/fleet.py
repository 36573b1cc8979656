"""keidrive fleet: many drives and log replays at once on a Dask cluster,
every trip into DuckDB; ``keidrive fleet report`` reads them back."""

from __future__ import annotations

import json
import sys

# What `--json` prints, exactly.
JSON_KEYS = ("trips", "failed", "workers", "wall_s", "trips_per_s", "db", "quality")
# The setting behind each flag whose name differs (errors name the flag).
FLAGS = {"vehicle": "--vehicles", "cycle": "--cycles", "profile": "--profiles"}
# Each mode's own flags, named in one line when given to the other mode.
REPORT_ONLY = ("run", "compare", "plot", "no_plot")
DRIVE_ONLY = ("vehicles", "cycles", "profiles", "dbc", "roles", "obd", "runtime", "scheduler", "workers", "parquet")


def add_subparser(subparsers) -> None:
    from ..fleet.store import DEFAULT_DB
    from . import options

    parser = subparsers.add_parser(
        "fleet",
        help="many drives and log replays on a Dask cluster, every trip into DuckDB (fleet report: read them)",
        description=(
            "Run a job array of whole drives on a Dask cluster: replays of drive logs (files or globs) and/or "
            "a matrix of simulated drives (--vehicles x --cycles x --profiles), each exactly as `keidrive "
            "replay` / `keidrive run` would run it, with its firmware in its own process on a private bus. "
            "A failed drive is retried once, then recorded with its reason; the rest go on. Every trip goes "
            "into the DuckDB file (tables runs, trips, warnings), appended under a new run id. "
            "`keidrive fleet report` summarises a run per vehicle and profile, or compares two runs."
        ),
    )
    parser.add_argument(
        "inputs", nargs="*", metavar="LOG|GLOB",
        help="drive logs to replay (any format python-can reads; globs are expanded here, and the paths must "
        "be readable on the workers)",
    )
    matrix = parser.add_argument_group("simulated drives")
    matrix.add_argument("--vehicles", metavar="A,B",
                        help="vehicle presets or TOML files (with only --cycles: nbox-turbo)")
    matrix.add_argument("--cycles", metavar="C,D", help="drive cycles or CSV files (with only --vehicles: wltc-jp)")
    matrix.add_argument("--profiles", metavar="P,Q", default="jp-expressway",
                        help="speed profiles, for simulated drives and replays alike (default: jp-expressway)")
    drive = parser.add_argument_group("passed to every drive (as keidrive run / replay take them)")
    options.add_dbc(drive)
    drive.add_argument("--obd", action="store_true",
                       help="simulated drives with the firmware as an OBD-II tester (as keidrive run --obd)")
    options.add_runtime(drive)
    engine = parser.add_argument_group("cluster")
    engine.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask cluster's scheduler")
    engine.add_argument("--workers", type=int, metavar="N",
                        help="worker processes of the local cluster (default: one per core)")
    out = parser.add_argument_group("output")
    out.add_argument("--db", default=DEFAULT_DB, metavar="FILE.duckdb", help=f"default: {DEFAULT_DB}")
    out.add_argument("--parquet", metavar="DIR", help="also write the run's trips and warnings as Parquet files")
    options.add_json(out, "exactly trips, failed, workers, wall_s (first drive submitted to last trip stored), "
                     "trips_per_s, db and quality (the run's data quality: docs/fleet.md)")
    _misplaced(parser, REPORT_ONLY)
    parser.set_defaults(func=run)

    report = subparsers.add_parser(
        "fleet report",
        description="Summarise a fleet run per vehicle and profile, or compare two runs: which drives changed "
                    "figures or warnings, and by how much.",
    )
    report.add_argument("--db", default=DEFAULT_DB, metavar="FILE.duckdb", help=f"default: {DEFAULT_DB}")
    which = report.add_mutually_exclusive_group()
    which.add_argument("--run", type=int, metavar="ID", help="the run to summarise (default: the latest)")
    which.add_argument("--compare", type=int, nargs=2, metavar=("RUN_A", "RUN_B"),
                       help="which drives changed figures or warnings from RUN_A to RUN_B, and by how much")
    options.add_plot(report, None)
    options.add_json(report, "the summary or the comparison")
    _misplaced(report, DRIVE_ONLY)
    report.set_defaults(func=run_report)


def _misplaced(parser, names) -> None:
    """The other mode's flags, taken quietly so that giving one is one clear line, not a usage dump."""
    import argparse

    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), nargs="*", dest="misplaced_" + name,
                            help=argparse.SUPPRESS)


def _refuse_misplaced(args, names, message: str) -> None:
    from ..errors import KeidriveError

    for name in names:
        if getattr(args, "misplaced_" + name) is not None:
            raise KeidriveError(message, option=name)


def run(args) -> int:
    from ..errors import KeidriveError
    from ..fleet import cluster, report, store
    from ..fleet.inputs import drive_tasks
    from . import screen

    _refuse_misplaced(args, REPORT_ONLY, "belongs to `keidrive fleet report`")
    if args.inputs[:1] == ["report"]:
        raise KeidriveError("`report` goes right after fleet: keidrive fleet report [--db FILE] [--run ID | "
                            "--compare A B]")
    specs = drive_tasks(args.inputs, _names(args.vehicles), _names(args.cycles), _names(args.profiles),
                        dbc=args.dbc, roles=args.roles, obd=args.obd, runtime=args.runtime,
                        check_runtime=args.scheduler is None)
    if args.parquet:
        store.parquet_dir(args.parquet)
    db = store.connect(args.db)
    try:
        with cluster.open_client(args.scheduler, args.workers) as client:
            workers = cluster.worker_count(client)
            where = args.scheduler or f"local:{workers}"
            err = screen.console(stderr=True)
            if not args.json or err.is_terminal:
                screen.banner(err, "fleet", f"{len(specs)} drives", f"on {where} ({workers} worker{'s' * (workers != 1)}), "
                       f"each on a private bus; trips into {args.db}")
            run_id = store.begin_run(db, _describe(args, specs), where, workers)
            wall, failures = _run_with_progress(client, specs, db, run_id, err)
        trips = len(specs) - len(failures)
        store.finish_run(db, run_id, trips, len(failures), round(wall, 3))
        if args.parquet:
            store.export_parquet(db, run_id, args.parquet)
        quality = report.quality(db, run_id)
    finally:
        db.close()
    figures = {
        "trips": trips, "failed": len(failures), "workers": workers, "wall_s": round(wall, 3),
        "trips_per_s": round(trips / wall, 3) if wall > 0 else 0.0, "db": str(args.db), "quality": quality,
    }
    for row in failures:
        print(f"keidrive: drive failed: {row['input']} ({row['profile']}): {row['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps({key: figures[key] for key in JSON_KEYS}, indent=2))
    else:
        print(f"{trips} trips, {len(failures)} failed on {workers} worker{'s' * (workers != 1)} in "
              f"{figures['wall_s']:.1f} s ({figures['trips_per_s']:.2f} trips/s); run {run_id} in {args.db}")
        print(report.quality_line(quality))
        if args.parquet:
            print(f"parquet: {args.parquet}/trips-run{run_id}.parquet, {args.parquet}/warnings-run{run_id}.parquet")
    if trips == 0:
        raise KeidriveError(f"all {len(specs)} drives failed")
    return 1 if failures else 0


def _names(text: str | None) -> list[str] | None:
    """A comma-separated list of names; None when the flag was not given."""
    from ..errors import KeidriveError

    if text is None:
        return None
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    if not chosen:
        raise KeidriveError(f"empty list {text!r}")
    return chosen


def _run_with_progress(client, specs, db, run_id, console):
    """All drives, a rich progress bar (done, failed, drives/s) on a
    terminal, each row stored as it arrives."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..fleet import cluster, store

    failures = []
    done = [0]
    writer = store.TripWriter(db, run_id)
    started = time.perf_counter()
    with Progress(
        TextColumn("fleet"), BarColumn(), MofNCompleteColumn(), TextColumn("failed {task.fields[failed]}"),
        TextColumn("{task.fields[rate]:.2f} drives/s"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("drives", total=len(specs), failed=0, rate=0.0)

        def on_row(index, row):
            writer.add(index + 1, row)
            if not row["ok"]:
                failures.append(row)
            done[0] += 1
            progress.update(task, completed=done[0], failed=len(failures),
                            rate=done[0] / max(time.perf_counter() - started, 1e-9))

        try:
            cluster.run_all(client, specs, on_row)
        finally:
            writer.flush()  # what finished is kept, even when the run is stopped
    return time.perf_counter() - started, failures


def _describe(args, specs) -> str:
    logs = sum(1 for spec in specs if spec["kind"] == "replay")
    parts = [f"{len(specs)} drives"]
    if logs:
        parts.append(f"{logs} replays")
    for name in ("vehicles", "cycles", "profiles", "dbc", "roles", "runtime"):
        if getattr(args, name):
            parts.append(f"--{name} {getattr(args, name)}")
    if args.obd:
        parts.append("--obd")
    return " ".join(parts)


def run_report(args) -> int:
    from ..fleet import report, store
    from . import screen

    _refuse_misplaced(args, DRIVE_ONLY, "is for running drives, not for `keidrive fleet report`")
    db = store.connect(args.db, read_only=True)
    try:
        if args.compare:
            result = report.compare(db, *args.compare)
        else:
            result = report.summary(db, args.run)
        if args.plot and "collected" in result:
            from ..errors import KeidriveError

            raise KeidriveError("--plot draws fleet runs; collected trips have none (use --json and your own plot)")
        if args.plot:
            report.plot(db, args.plot, args.compare or [result["run"]])
    finally:
        db.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report.print_result(result, screen.console())
        if args.plot:
            print(f"plot: {args.plot}")
    return 0
