"""keidrive replay, run and simulate against the ways a real user trips them:
paced replays, logs of another car, a wrong DBC or truth, cut logs, output
paths that fail, a missing optional writer, which runtime ran."""

import json
import os
import sys

import pytest
from conftest import SHORT_CYCLE, keidrive, one_line_error


@pytest.fixture
def env(tmp_path):
    environment = dict(os.environ)
    environment["KEIDRIVE_BUS_DIR"] = str(tmp_path / "bus")
    return environment


@pytest.fixture(scope="module")
def short_logs(tmp_path_factory):
    """A 34 s alto-na drive as candump .log and .blf, and a Sakura drive, with their truths."""
    folder = tmp_path_factory.mktemp("logs")
    (folder / "short.csv").write_text(SHORT_CYCLE)
    environment = dict(os.environ, KEIDRIVE_BUS_DIR=str(folder / "bus"))
    made = {}
    for vehicle, suffix in (("alto-na", ".log"), ("alto-na", ".blf"), ("sakura-ev", ".log")):
        log = folder / f"{vehicle}{suffix}"
        result = keidrive("simulate", "--vehicle", vehicle, "--cycle", str(folder / "short.csv"), "-o", str(log),
                          "--json", env=environment)
        assert result.returncode == 0, result.stderr
        (folder / f"{vehicle}.json").write_text(result.stdout)
        made[vehicle + suffix] = log
        made[vehicle + ".json"] = folder / f"{vehicle}.json"
    return made


def test_paced_replay_integrates_on_the_frames_time(short_logs, env):
    """--speed paces delivery only: the trip is the log's, not divided by N."""
    truth = json.loads(short_logs["alto-na.json"].read_text())
    result = keidrive("replay", str(short_logs["alto-na.log"]), "--speed", "10", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["firmware"]["distance_km"] == pytest.approx(truth["distance_km"], rel=0.01)
    assert report["firmware"]["fuel_l"] == pytest.approx(truth["fuel_l"], rel=0.01)


def test_replay_json_names_runtime_coverage_and_truncation(short_logs, env):
    result = keidrive("replay", str(short_logs["alto-na.log"]), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"firmware", "quality", "frames", "wall_s", "runtime", "unknown_frames", "explained_share",
                           "truncated"}
    assert report["unknown_frames"] == 0 and report["explained_share"] == 1.0
    assert report["truncated"] is None
    assert report["runtime"].endswith("micropython")


def test_printed_report_names_the_runtime_and_the_coverage(short_logs, env, tmp_path):
    result = keidrive("replay", str(short_logs["alto-na.log"]), "--runtime", "cpython", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"runtime: cpython ({sys.executable})" in result.stdout
    assert "kei_turbo_660 explains 100.0 % of the frames (0 unknown)" in result.stdout


def test_a_log_of_another_car_is_refused(short_logs, env, tmp_path):
    """Mostly frames no keidrive DBC defines, a few that coincide with the turbo's IDs."""
    ours = short_logs["alto-na.log"].read_text().splitlines()[:300]
    foreign = [f"({1 + i * 0.001:.6f}) can0 {0x700 + i % 200:03X}#0102030405060708" for i in range(3000)]
    log = tmp_path / "other-car.log"
    log.write_text("\n".join(sorted(ours + foreign, key=lambda line: float(line[1:line.index(")")]))) + "\n")
    one_line_error(keidrive("replay", str(log), env=env), "explains only")


def test_a_wrong_dbc_is_refused(short_logs, env):
    one_line_error(keidrive("replay", str(short_logs["sakura-ev.log"]), "--dbc", "kei_turbo_660", env=env),
                   "kei_turbo_660 explains only")


def test_a_truth_of_another_vehicle_or_cycle_is_refused(short_logs, env, tmp_path):
    one_line_error(keidrive("replay", str(short_logs["alto-na.log"]), "--truth", str(short_logs["sakura-ev.json"]),
                            env=env), "is of sakura-ev")
    other_cycle = json.loads(short_logs["alto-na.json"].read_text())
    other_cycle.update(cycle="udds", duration_s=1369.0)
    truth = tmp_path / "udds.json"
    truth.write_text(json.dumps(other_cycle))
    one_line_error(keidrive("replay", str(short_logs["alto-na.log"]), "--truth", str(truth), env=env),
                   "lasts 1369 s")


def test_a_cut_candump_log_replays_what_is_whole(short_logs, env, tmp_path):
    text = short_logs["alto-na.log"].read_text()
    lines = text.splitlines()
    cut = tmp_path / "cut.log"
    cut.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:14])  # power lost mid-line
    result = keidrive("replay", str(cut), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["truncated"] == {"frames_read": len(lines) - 1, "line": len(lines), "byte": len(text) - len(lines[-1]) - 1}
    assert report["frames"] == len(lines) - 1
    assert f"line {len(lines)}" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    printed = keidrive("replay", str(cut), env=env, cwd=tmp_path)
    assert printed.returncode == 0 and "truncated" in printed.stdout


def test_a_cut_blf_log_says_so(short_logs, env, tmp_path):
    data = short_logs["alto-na.blf"].read_bytes()
    cut = tmp_path / "cut.blf"
    cut.write_bytes(data[: len(data) * 2 // 3])
    result = keidrive("replay", str(cut), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    truncated = report["truncated"]
    assert truncated["byte"] == len(data) * 2 // 3 and truncated["expected_bytes"] == len(data)
    assert 0 < truncated["frames_read"] == report["frames"]
    assert "cut at byte" in result.stderr


def test_outputs_are_checked_before_the_drive(short_logs, env, tmp_path):
    log = str(short_logs["alto-na.log"])
    one_line_error(keidrive("replay", log, "--plot", str(tmp_path / "p.xyz"), env=env), "--plot wants")
    one_line_error(keidrive("replay", log, "--plot", str(tmp_path / "nope" / "p.png"), env=env),
                   "does not exist")
    one_line_error(keidrive("run", "--cycle", "hwfet", "--plot", str(tmp_path / "p.bmpx"), env=env), "--plot wants")
    one_line_error(keidrive("run", "--cycle", "hwfet", "--plot", str(tmp_path / "nope" / "p.png"), env=env),
                   "does not exist")


def test_json_writes_a_plot_only_when_asked(tmp_path, env):
    cycle = tmp_path / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    result = keidrive("run", "--vehicle", "alto-na", "--cycle", str(cycle), "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"truth", "firmware", "quality", "frames", "wall_s", "runtime"}
    assert not list(tmp_path.glob("*.png"))
    result = keidrive("run", "--vehicle", "alto-na", "--cycle", str(cycle), "--no-plot", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.glob("*.png")) and "plot:" not in result.stdout
    one_line_error(keidrive("run", "--cycle", str(cycle), "--plot", "none", env=env, cwd=tmp_path), "--plot wants")
    assert not (tmp_path / "none.png").exists()


def test_an_mf4_log_replays_like_the_blf_of_the_same_drive(short_logs, tmp_path, env):
    """MF4 (asammdf, a dependency): the recorders' format written by python-can's
    MF4 writer and read back by its reader gives the BLF's trip."""
    cycle = tmp_path / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    mf4 = tmp_path / "alto-na.mf4"
    made = keidrive("simulate", "--vehicle", "alto-na", "--cycle", str(cycle), "-o", str(mf4), "--json", env=env)
    assert made.returncode == 0, made.stderr
    trips = {}
    for log in (mf4, short_logs["alto-na.blf"]):
        result = keidrive("replay", str(log), "--json", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        trips[log.suffix] = json.loads(result.stdout)
    assert trips[".mf4"]["frames"] == trips[".blf"]["frames"]
    assert trips[".mf4"]["firmware"] == trips[".blf"]["firmware"]


def test_profiles_lists_the_firmwares_table(env):
    from keidrive.fwconfig import firmware_module

    table = firmware_module("alerts").PROFILES
    result = keidrive("profiles", "--json", env=env)
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert set(listed) == set(table)
    assert listed["jp-expressway"]["limit_kmh"] == 100.0 and listed["jp-expressway"]["minimum_kmh"] == 50.0
    assert listed["us-minitruck-55"]["limit_kmh"] == 88.51 and listed["us-minitruck-55"]["minimum_kmh"] is None
    assert all(set(p) == {"name", "limit_kmh", "minimum_kmh", "notes"} for p in listed.values())
    printed = keidrive("profiles", env=env)
    assert printed.returncode == 0 and "us-interstate" in printed.stdout and "posted_limit_mph" in printed.stdout


def test_a_paced_replay_through_another_bus_refuses_a_speed_it_would_misreport(short_logs, env):
    """Through a python-can bus the firmware sees the bus's receive times, so
    only recorded pace gives the log's trip: another speed is refused before anything is sent."""
    one_line_error(keidrive("replay", str(short_logs["alto-na.log"]), "--bus", "virtual:h3pace", "--speed", "10",
                            env=env), "only recorded pace")


def test_min_explained_lets_a_shared_bus_through(short_logs, env):
    result = keidrive("replay", str(short_logs["sakura-ev.log"]), "--dbc", "kei_turbo_660", "--min-explained", "0.2",
                      "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert 0.2 <= report["explained_share"] < 0.5 and report["unknown_frames"] > 0
    one_line_error(keidrive("replay", str(short_logs["sakura-ev.log"]), "--min-explained", "2", env=env),
                   "--min-explained")


def test_a_blf_its_logger_never_closed_says_so(short_logs, env, tmp_path):
    """Power lost while logging: python-can's BLFWriter never rewrote the
    header, and what it had not flushed is gone; what was written replays."""
    import can

    blf = tmp_path / "unclosed.blf"
    writer = can.BLFWriter(str(blf))
    for msg in can.LogReader(str(short_logs["alto-na.log"])):
        writer.on_message_received(msg)
    writer.file.flush()
    cut = tmp_path / "power-lost.blf"
    cut.write_bytes(blf.read_bytes())  # the file as the power cut left it
    writer.stop()
    result = keidrive("replay", str(cut), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["truncated"]["expected_bytes"] < report["truncated"]["byte"] == cut.stat().st_size
    assert "never closed by its logger" in result.stderr
