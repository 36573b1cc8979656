"""keidrive fleet on a real Dask cluster (a distributed.LocalCluster of two
worker processes on loopback): a small matrix of simulated drives and a few
log replays, a corrupt log that fails while the rest complete, the DuckDB
file and the Parquet files read back with duckdb, every trip equal to the
single `keidrive run` / `keidrive replay` of the same drive, and the
report and comparison read from the file."""

import json
import os
from pathlib import Path

import duckdb
import pytest
from conftest import micropython_or_skip

distributed = pytest.importorskip("distributed")

from keidrive.cli import main

micropython_or_skip()  # every drive runs its firmware in the MicroPython unix port

# 75 s with a stretch above the 55 mph limit of us-minitruck-55: short, and it warns.
SHORT_CYCLE = "time_s,speed_kmh\n0,0\n3,0\n20,60\n30,95\n50,95\n62,40\n72,0\n75,0\n"
PROFILE = "us-minitruck-55"
FIGURES = ("distance_km", "fuel_l", "energy_kwh", "km_per_l", "eco_score")


def _main(argv):
    """``keidrive ARGV`` in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exit:
            status = exit.code
    return status, out.getvalue(), err.getvalue()


def keidrive_json(*argv):
    status, out, err = _main(list(argv))
    assert status == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """One fleet run over the cluster, and the single runs to hold it to."""
    work = tmp_path_factory.mktemp("fleet")
    saved = os.environ.get("KEIDRIVE_BUS_DIR")
    os.environ["KEIDRIVE_BUS_DIR"] = str(work / "bus")  # a bus folder of its own, inherited by the workers
    cycle = work / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    logs = {}
    for vehicle, suffix in (("nbox-turbo", "blf"), ("alto-hybrid", "asc")):
        logs[vehicle] = work / f"{vehicle}.{suffix}"
        keidrive_json("simulate", "--vehicle", vehicle, "--cycle", str(cycle), "-o", str(logs[vehicle]), "--json")
    corrupt = work / "corrupt.blf"
    corrupt.write_bytes(bytes(range(256)) * 16)
    db = work / "trips.duckdb"
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0")
    try:
        argv = ["fleet", str(work / "*.blf"), str(logs["alto-hybrid"]), "--vehicles", "alto-na,sakura-ev",
                "--cycles", str(cycle), "--profiles", PROFILE, "--scheduler", cluster.scheduler_address,
                "--db", str(db), "--parquet", str(work / "parquet"), "--json"]
        yield {"work": work, "db": db, "cycle": cycle, "logs": logs, "corrupt": corrupt, "cluster": cluster,
               "first": _main(argv)}
    finally:
        cluster.close()
        if saved is None:
            os.environ.pop("KEIDRIVE_BUS_DIR", None)
        else:
            os.environ["KEIDRIVE_BUS_DIR"] = saved


def _trips(db, run_id=1):
    with duckdb.connect(str(db), read_only=True) as connection:
        cursor = connection.execute("SELECT * FROM trips WHERE run_id = ? ORDER BY trip_id", [run_id])
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]


def test_the_run_reports_its_figures_and_the_corrupt_log(fleet):
    status, out, err = fleet["first"]
    assert status == 1  # a drive failed: the run says so, after finishing the rest
    summary = json.loads(out)
    assert list(summary) == ["trips", "failed", "workers", "wall_s", "trips_per_s", "db", "quality"]
    assert summary["quality"]["drives_with_faulty_sources"] == 0 and summary["quality"]["not_measured"] == {}
    assert set(summary["quality"]["rejected_frames"]) == {"dlc", "checksum", "counter", "rate", "plausibility", "stale"}
    assert summary["trips"] == 4 and summary["failed"] == 1 and summary["workers"] == 2
    assert summary["db"] == str(fleet["db"]) and summary["wall_s"] > 0
    assert summary["trips_per_s"] == pytest.approx(4 / summary["wall_s"], rel=2e-3)  # both rounded to 3 places
    [failure] = [line for line in err.splitlines() if "drive failed" in line]
    assert str(fleet["corrupt"]) in failure and "not a readable .blf file" in failure


def test_every_drive_is_a_row_of_the_duckdb_file(fleet):
    trips = _trips(fleet["db"])
    assert len(trips) == 5
    by_input = {row["input"]: row for row in trips}
    broken = by_input[str(fleet["corrupt"])]
    assert not broken["ok"] and broken["attempts"] == 2 and "not a readable .blf file" in broken["error"]
    assert broken["distance_km"] is None
    assert all(broken[name] is None for name in ("fallback_s", "untrusted_s", "rejected_frames", "faulty_sources",
                                                  "not_measured"))
    done = [row for row in trips if row["ok"]]
    for row in done:  # the data-quality columns: clean drives, nothing faulty or unmeasured
        assert row["faulty_sources"] == {} and row["not_measured"] == [] and row["fallback_km"] == 0
        assert set(row["rejected_frames"]) == {"dlc", "checksum", "counter", "rate", "plausibility", "stale"}
        assert row["untrusted_s"] < 2
    assert {row["kind"] for row in done} == {"run", "replay"}
    assert {row["vehicle"] for row in done} == {"alto-na", "sakura-ev", "kei_turbo_660", "kei_hybrid_660"}
    assert len({row["worker"] for row in trips}) == 2  # both worker processes drove
    for row in done:
        assert row["error"] is None and row["attempts"] == 1 and row["profile"] == PROFILE
        assert row["distance_km"] > 0.5 and row["firmware_version"]
    with duckdb.connect(str(fleet["db"]), read_only=True) as connection:
        assert connection.execute("SELECT trips, failed, workers FROM runs").fetchall() == [(4, 1, 2)]
        # warnings: one row per event, and the counts by kind in trips agree
        events = connection.execute("SELECT trip_id, kind, count(*) FROM warnings GROUP BY ALL").fetchall()
        parquet = fleet["work"] / "parquet" / "trips-run1.parquet"
        assert connection.execute(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchone()[0] == 5
    assert "overspeed" in {kind for _, kind, _ in events}
    counted = {(row["trip_id"], kind): n for row in trips for kind, n in (row["warnings_by_kind"] or {}).items()}
    assert counted == {(trip_id, kind): n for trip_id, kind, n in events}


def test_fleet_trips_equal_single_runs(fleet):
    trips = {row["input"]: row for row in _trips(fleet["db"])}
    single = keidrive_json("run", "--vehicle", "sakura-ev", "--cycle", str(fleet["cycle"]), "--profile", PROFILE,
                           "--json")
    row = trips[f"sakura-ev/{fleet['cycle']}"]
    assert {name: row[name] for name in FIGURES} == {name: single["firmware"][name] for name in FIGURES}
    assert row["warnings"] == len(single["firmware"]["warnings"])
    assert (row["truth_distance_km"], row["truth_energy_kwh"], row["frames"]) == (
        single["truth"]["distance_km"], single["truth"]["energy_kwh"], single["frames"])
    replayed = keidrive_json("replay", str(fleet["logs"]["nbox-turbo"]), "--profile", PROFILE, "--json")
    row = trips[str(fleet["logs"]["nbox-turbo"])]
    assert {name: row[name] for name in FIGURES} == {name: replayed["firmware"][name] for name in FIGURES}
    assert row["frames"] == replayed["frames"]
    with duckdb.connect(str(fleet["db"]), read_only=True) as connection:
        events = connection.execute("SELECT kind, level, start_s, end_s FROM warnings WHERE trip_id = ? "
                                    "ORDER BY start_s", [row["trip_id"]]).fetchall()
    assert events == [tuple(w.values()) for w in replayed["firmware"]["warnings"]]


def test_obd_passes_through_to_the_simulated_drives(fleet, tmp_path):
    db = tmp_path / "obd.duckdb"
    status, _, err = _main(["fleet", "--vehicles", "alto-hybrid", "--cycles", str(fleet["cycle"]), "--obd",
                            "--profiles", PROFILE, "--scheduler", fleet["cluster"].scheduler_address,
                            "--db", str(db), "--json"])
    assert status == 0, err
    [row] = _trips(db)
    single = keidrive_json("run", "--vehicle", "alto-hybrid", "--cycle", str(fleet["cycle"]), "--obd",
                           "--profile", PROFILE, "--json")
    assert row["options"] == "--obd" and row["frames"] == single["frames"]
    assert {name: row[name] for name in FIGURES} == {name: single["firmware"][name] for name in FIGURES}


def test_dbc_and_roles_pass_through_to_the_simulated_drives(fleet, tmp_path):
    """A preset driven on a bus in a production DBC's format (keidrive run --dbc --roles)."""
    from keidrive.paths import dbc_dir

    if not os.environ.get("KEIDRIVE_OPENDBC"):
        pytest.skip("set KEIDRIVE_OPENDBC to the opendbc folder (toyota_2017_ref_pt.dbc) to run this")
    dbc = str(Path(os.environ["KEIDRIVE_OPENDBC"]) / "toyota_2017_ref_pt.dbc")
    roles = str(dbc_dir() / "roles" / "toyota_2017_ref_pt.toml")
    db = tmp_path / "roles.duckdb"
    status, _, err = _main(["fleet", "--vehicles", "alto-hybrid", "--cycles", str(fleet["cycle"]), "--dbc", dbc,
                            "--roles", roles, "--profiles", PROFILE, "--scheduler", fleet["cluster"].scheduler_address,
                            "--db", str(db), "--json"])
    assert status == 0, err
    [row] = _trips(db)
    single = keidrive_json("run", "--vehicle", "alto-hybrid", "--cycle", str(fleet["cycle"]), "--dbc", dbc,
                           "--roles", roles, "--profile", PROFILE, "--json")
    # (the paths as stored: resolved, links followed)
    assert row["options"] == f"--dbc {Path(dbc).resolve()} --roles {Path(roles).resolve()}"
    assert row["frames"] == single["frames"]
    assert {name: row[name] for name in FIGURES} == {name: single["firmware"][name] for name in FIGURES}


def test_report_and_comparison_of_two_runs(fleet, tmp_path):
    db = str(fleet["db"])
    # Run 2: the hybrid's log again, on a local cluster of its own (no --scheduler).
    status, out, err = _main(["fleet", str(fleet["logs"]["alto-hybrid"]), "--profiles", PROFILE, "--workers", "1",
                              "--db", db, "--json"])
    assert status == 0, err
    assert {k: v for k, v in json.loads(out).items() if k in ("trips", "failed", "workers")} == {
        "trips": 1, "failed": 0, "workers": 1}
    status, out, _ = _main(["fleet", "report", "--db", db, "--run", "1", "--json"])
    assert status == 0
    summary = json.loads(out)
    groups = {(g["vehicle"], g["profile"]): g for g in summary["groups"]}
    assert set(groups) == {(v, PROFILE) for v in ("alto-na", "sakura-ev", "kei_turbo_660", "kei_hybrid_660")}
    assert groups[("sakura-ev", PROFILE)]["unit"] == "Wh/km" and groups[("alto-na", PROFILE)]["unit"] == "km/L"
    alto = groups[("alto-na", PROFILE)]
    assert alto["warnings_per_100km"] == round(alto["warnings"] * 100 / alto["distance_km"], 2)
    assert [f["input"] for f in summary["failures"]] == [str(fleet["corrupt"])]
    status, out, _ = _main(["fleet", "report", "--db", db, "--run", "1"])
    assert status == 0 and "kei_hybrid_660" in out and "…" not in out  # off a terminal no column is cut short

    status, out, _ = _main(["fleet", "report", "--db", db, "--compare", "1", "2", "--json"])
    same = json.loads(out)
    assert (same["compared"], same["unchanged"], same["changed"]) == (1, 1, [])  # the same trip on either cluster
    assert len(same["only_in_a"]) == 4 and same["only_in_b"] == []
    # A firmware that reads 2 % more economy on that drive: the comparison shows the drive and by how much.
    with duckdb.connect(db) as connection:
        connection.execute("UPDATE trips SET km_per_l = km_per_l * 1.02 WHERE run_id = 2")
    plot = tmp_path / "compare.png"
    status, out, _ = _main(["fleet", "report", "--db", db, "--compare", "1", "2", "--plot", str(plot), "--json"])
    [changed] = json.loads(out)["changed"]
    assert changed["input"] == str(fleet["logs"]["alto-hybrid"])
    assert list(changed["figures"]) == ["km_per_l"] and changed["figures"]["km_per_l"]["percent"] == 2.0
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_a_worker_that_dies_fails_its_drive_only(fleet, tmp_path):
    """A firmware "runtime" that kills its worker process on the EV's drive
    and runs the real MicroPython otherwise: the EV's drive is a failed row
    with Dask's reason, the other drive completes, the run ends."""
    from keidrive.runtime import micropython_command

    runtime = tmp_path / "micropython-that-kills-ev-workers"
    # argv: main.py --stdin|--socket PATH --config FILE ...; the parent is the worker process.
    runtime.write_text('#!/bin/sh\nconfig=$(echo "$@" | sed "s/.*--config \\([^ ]*\\).*/\\1/")\n'
                       'if grep -q kei_ev "$config"; then kill -9 $PPID; exit 1; fi\n'
                       f'exec {micropython_command()} "$@"\n')
    runtime.chmod(0o755)
    db = tmp_path / "deaths.duckdb"
    scheduler = fleet["cluster"].scheduler
    allowed, scheduler.allowed_failures = scheduler.allowed_failures, 0  # one death, not 4, and Dask gives up
    try:
        status, out, err = _main(["fleet", "--vehicles", "alto-na,sakura-ev", "--cycles", str(fleet["cycle"]),
                                  "--runtime", str(runtime), "--scheduler", fleet["cluster"].scheduler_address,
                                  "--db", str(db), "--json"])
    finally:
        scheduler.allowed_failures = allowed
    assert status == 1, err
    assert {k: json.loads(out)[k] for k in ("trips", "failed")} == {"trips": 1, "failed": 1}
    rows = {row["vehicle"]: row for row in _trips(db)}
    assert rows["alto-na"]["ok"] and rows["alto-na"]["distance_km"] > 0.5
    assert not rows["sakura-ev"]["ok"] and "KilledWorker" in rows["sakura-ev"]["error"]
    assert "sakura-ev" in err and "KilledWorker" in err


@pytest.mark.parametrize("argv, message", [
    (["fleet"], "nothing to drive"),
    (["fleet", "/nonexistent/*.blf"], "no log matches /nonexistent/*.blf"),
    (["fleet", "--vehicles", "alto-na,no-such-car"], "no-such-car"),
    (["fleet", "--cycles", "hwfet", "--profiles", "autobahn"], "autobahn"),
    (["fleet", "/nonexistent*.blf", "--obd"], "no log matches"),
    (["fleet", "--cycles", "hwfet", "--run", "2"], "--run belongs to `keidrive fleet report`"),
    (["fleet", "--cycles", "hwfet", "--workers", "0"], "--workers must be at least 1"),
    (["fleet", "report", "--db", "/nonexistent/fleet.duckdb"], "no such fleet database"),
    (["fleet", "report", "--vehicles", "alto-na"], "--vehicles is for running drives"),
    (["fleet", "/nonexistent.blf", "--obd"], "/nonexistent.blf: no such log file"),
    (["fleet", "report", "--obd"], "--obd is for running drives"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = _main(argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("keidrive: error: ") and message in err


def test_bad_files_are_one_line_before_any_drive(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.duckdb").write_text("not a database\n")
    (tmp_path / "a-file").write_text("")
    (tmp_path / "drive.blf").write_bytes(b"")
    for argv, message in (
        (["fleet", "drive.blf", "--obd"], "--obd: no drive here takes it (keidrive replay does not)"),
        (["fleet", "report", "--db", "junk.duckdb"], "junk.duckdb: cannot open as a fleet database"),
        (["fleet", "--cycles", "hwfet", "--db", "junk.duckdb"], "junk.duckdb: cannot open as a fleet database"),
        (["fleet", "--cycles", "hwfet", "--parquet", "a-file/out"], "cannot write Parquet to a-file/out"),
    ):
        status, out, err = _main(argv)
        assert (status, out, err.count("\n")) == (2, "", 1) and message in err


def test_report_of_an_unknown_run(fleet):
    status, _, err = _main(["fleet", "report", "--db", str(fleet["db"]), "--run", "99"])
    assert status == 2 and "no run 99 in the fleet database (runs: 1" in err


def test_trips_are_stored_in_batches_and_read_back_whole(tmp_path):
    """The batched writer: every row and warning event lands, in batches of
    flush_rows and a last one on flush."""
    from keidrive.drive.spec import DriveSpec
    from keidrive.fleet import store, tasks

    db = store.connect(tmp_path / "batches.duckdb")
    run_id = store.begin_run(db, "batches", "none", 0)
    spec = tasks.simulated(DriveSpec("alto-na", "hwfet", PROFILE))
    events = [{"kind": "overspeed", "level": "caution", "start_s": 1.5, "end_s": 9.0},
              {"kind": "idle", "level": "advisory", "start_s": 20.0, "end_s": None}]
    outcome = {"truth": {"distance_km": 16.5}, "trip": {}, "frames": 100, "vehicle": "alto-na", "cycle": "hwfet",
               "firmware": {"distance_km": 16.4, "fuel_l": 0.5, "km_per_l": 32.8, "energy_kwh": 0.0, "eco_score": 90,
                            "warnings": events}}
    writer = store.TripWriter(db, run_id, flush_rows=500, flush_s=3600)
    for trip_id in range(1, 1201):
        writer.add(trip_id, tasks.trip_row(spec, outcome if trip_id % 3 else None, "a reason", 1, 1.0, "w"))
        if trip_id == 1000:
            assert db.execute("SELECT count(*) FROM trips").fetchone()[0] == 1000  # two full batches
    writer.flush()
    assert db.execute("SELECT count(*), count(*) FILTER (WHERE ok), max(trip_id) FROM trips").fetchone() == (
        1200, 800, 1200)
    assert db.execute("SELECT distance_km, warnings, warnings_by_kind, truth_distance_km, error FROM trips "
                      "WHERE trip_id = 2").fetchone() == (16.4, 2, {"idle": 1, "overspeed": 1}, 16.5, None)
    assert db.execute("SELECT ok, error, warnings_by_kind FROM trips WHERE trip_id = 3").fetchone() == (
        False, "a reason", {})
    assert db.execute("SELECT count(*), count(end_s) FROM warnings").fetchone() == (1600, 800)
    assert db.execute("SELECT kind, level, start_s, end_s FROM warnings WHERE trip_id = 2 ORDER BY start_s"
                      ).fetchall() == [tuple(event.values()) for event in events]
    db.close()


def test_the_quality_columns_land_and_an_older_file_gains_them(tmp_path):
    """A trip's quality in its columns (maps, a list), null for a failed
    drive; a file written before those columns existed gets them on open."""
    from keidrive.fleet import report, store, tasks

    path = tmp_path / "old.duckdb"
    db = store.connect(path)
    for name in ("fallback_s", "fallback_km", "untrusted_s", "rejected_frames", "faulty_sources", "not_measured"):
        db.execute(f"ALTER TABLE trips DROP COLUMN {name}")
    db.close()
    db = store.connect(path)
    run_id = store.begin_run(db, "quality", "none", 0)
    spec = tasks.replayed("drive.blf", PROFILE, "micropython", [])
    quality = {"sources": [{"source": "VEHICLE_SPEED.VehicleSpeed", "lead_s": 900.0},
                           {"source": "wheels", "lead_s": 100.0}],
               "fallback_s": 100.0, "fallback_km": 1.25, "untrusted_s": 3.5,
               "rejected": {"dlc": 0, "checksum": 2, "counter": 14769, "rate": 0, "plausibility": 5, "stale": 4},
               "faulty": [{"source": "VEHICLE_SPEED.VehicleSpeed", "reason": "frozen", "s": 99.0}],
               "not_measured": ["eco_score"]}
    outcome = {"truth": None, "trip": {"quality": quality}, "frames": 100, "vehicle": "kei_turbo_660", "cycle": None,
               "firmware": {"distance_km": 16.4, "fuel_l": 0.5, "km_per_l": 32.8, "energy_kwh": None,
                            "eco_score": None, "warnings": []}}
    store.add_trips(db, run_id, [(1, tasks.trip_row(spec, outcome, None, 1, 1.0, "w")),
                                 (2, tasks.trip_row(spec, None, "a reason", 2, None, None))])
    assert db.execute("SELECT fallback_s, fallback_km, untrusted_s, rejected_frames, faulty_sources, not_measured "
                      "FROM trips ORDER BY trip_id").fetchall() == [
        (100.0, 1.25, 3.5, quality["rejected"], {"VEHICLE_SPEED.VehicleSpeed": "frozen"}, ["eco_score"]),
        (None, None, None, None, None, None)]
    summary = report.quality(db, run_id)
    assert summary["drives_with_faulty_sources"] == 1 and summary["rejected_frames"]["counter"] == 14769
    assert summary["not_measured"] == {"eco_score": 1} and summary["fallback_km"] == 1.25
    assert "1 drives with a faulty speed source" in report.quality_line(summary)
    db.close()
