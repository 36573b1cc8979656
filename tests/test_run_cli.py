"""keidrive run and keidrive replay from the command line: the JSON
contract, the plot, runtimes, real-time runs other tools attach to, and one
clear line for every bad input."""

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time

import pytest
from conftest import SHORT_CYCLE, keidrive
from keidrive.paths import dbc_dir


@pytest.fixture
def env(tmp_path):
    environment = dict(os.environ)
    environment["KEIDRIVE_BUS_DIR"] = str(tmp_path / "bus")
    return environment


def test_run_json_contract_and_plot(tmp_path, env):
    plot = tmp_path / "drive.png"
    result = keidrive("run", "--vehicle", "alto-na", "--cycle", "hwfet", "--plot", str(plot), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"truth", "firmware", "quality", "frames", "wall_s", "runtime"}
    assert set(report["firmware"]) == {"distance_km", "fuel_l", "km_per_l", "energy_kwh", "eco_score", "warnings"}
    assert set(report["quality"]) == {"sources", "fallback_s", "fallback_km", "untrusted_s", "rejected", "faulty",
                                      "not_measured"}
    assert set(report["quality"]["rejected"]) == {"dlc", "checksum", "counter", "rate", "plausibility", "stale"}
    assert report["quality"]["faulty"] == [] and report["quality"]["not_measured"] == []
    assert set(report["truth"]) == {
        "vehicle", "cycle", "duration_s", "distance_km", "fuel_l", "km_per_l", "l_per_100km", "mpg_us",
        "energy_kwh", "phases", "trace_shortfall_s", "frames",
    }
    assert report["firmware"]["fuel_l"] == pytest.approx(report["truth"]["fuel_l"], rel=0.005)
    for warning in report["firmware"]["warnings"]:
        assert set(warning) == {"kind", "level", "start_s", "end_s"}
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_run_report_in_the_terminal(tmp_path, env):
    result = keidrive("run", "--vehicle", "sakura-ev", "--cycle", "us06", "--profile", "us-interstate",
                      env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ground truth" in result.stdout and "firmware" in result.stdout
    assert "Wh/km" in result.stdout and "overspeed" in result.stdout
    # off a terminal nothing wraps inside a cell: no row goes on below an empty first cell
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert rows and not [row for row in rows if row.split("│")[1].strip() == ""], result.stdout
    plot_line = result.stdout.strip().splitlines()[-1]
    assert plot_line.startswith("plot: ") and (tmp_path / plot_line[len("plot: "):]).is_file()


def test_cpython_runtime_gives_the_same_figures(tmp_path, env):
    args = ("run", "--vehicle", "alto-hybrid", "--cycle", "udds", "--json", "--plot", str(tmp_path / "p.png"))
    micro = json.loads(keidrive(*args, env=env).stdout)
    cpython = json.loads(keidrive(*args, "--runtime", "cpython", env=env).stdout)
    assert micro["firmware"] == cpython["firmware"]


def test_replay_a_recorded_log_gives_the_runs_figures(tmp_path, env):
    log = tmp_path / "drive.blf"
    truth = tmp_path / "truth.json"
    made = keidrive("simulate", "--vehicle", "nbox-turbo", "--cycle", "udds", "-o", str(log), "--json", env=env)
    assert made.returncode == 0, made.stderr
    truth.write_text(made.stdout)
    result = keidrive("replay", str(log), "--truth", str(truth), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = json.loads(made.stdout)
    assert report["firmware"]["distance_km"] == pytest.approx(expected["distance_km"], rel=0.005)
    assert report["firmware"]["fuel_l"] == pytest.approx(expected["fuel_l"], rel=0.005)


def test_paced_replay_reports_its_timing_error(tmp_path, env):
    cycle = tmp_path / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    log = tmp_path / "short.asc"
    assert keidrive("simulate", "--vehicle", "alto-na", "--cycle", str(cycle), "-o", str(log), "--no-plot",
                    env=env).returncode == 0
    result = keidrive("replay", str(log), "--speed", "4", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["timing_error"]) == {"mean_ms", "p99_ms", "max_ms"}
    print("\npaced replay at 4x, timing error:", report["timing_error"])


def test_cantools_monitor_attaches_to_a_realtime_run(tmp_path, env):
    """The issue's own check: `cantools monitor -i keidrive -c CHANNEL DBC`
    shows the frames of a running `keidrive run --realtime --bus keidrive:CHANNEL`."""
    cycle = tmp_path / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    run = subprocess.Popen(
        [sys.executable, "-m", "keidrive", "run", "--vehicle", "alto-na", "--cycle", str(cycle), "--realtime",
         "--bus", "keidrive:live0", "--plot", str(tmp_path / "p.png")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    screen = b""
    primary, secondary = pty.openpty()
    monitor_env = dict(env, TERM="xterm", COLUMNS="160", LINES="50")
    monitor = subprocess.Popen(
        [sys.executable, "-m", "cantools", "monitor", "-i", "keidrive", "-c", "live0", str(dbc_dir() / "kei_turbo_660.dbc")],
        stdin=secondary, stdout=secondary, stderr=secondary, env=monitor_env, close_fds=True,
    )
    os.close(secondary)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and b"VehicleSpeed" not in screen:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(primary, 65536)
                except OSError:
                    break
    finally:
        monitor.terminate()
        monitor.wait(timeout=10)
        os.close(primary)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert b"ENGINE_1" in screen and b"VehicleSpeed" in screen
    assert "pace: lateness" in out


@pytest.mark.parametrize("args, words", [
    (["run", "--vehicle", "mira"], "valid vehicles"),
    (["run", "--cycle", "jc08"], "valid cycles"),
    (["run", "--profile", "autobahn"], "--profile autobahn: no such speed profile"),
    (["run", "--bus", "nosuchinterface:x"], "--bus nosuchinterface:x: python-can has no interface"),
    (["run", "--runtime", "/nonexistent/micropython"], "runtime '/nonexistent/micropython'"),
    (["replay", "missing.asc"], "no such log file"),
    (["replay", "--speed", "0", "x.asc"], "--speed 0: must be positive"),
])
def test_bad_input_is_one_clear_line(tmp_path, env, args, words):
    result = keidrive(*args, env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_bad_logs_are_one_clear_line(tmp_path, env):
    unknown = tmp_path / "drive.xyz"
    unknown.write_text("hello")
    empty = tmp_path / "empty.asc"
    empty.write_text("")
    foreign = tmp_path / "foreign.log"
    foreign.write_text("(1.000000) can0 7FF#0102\n(1.010000) can0 7FE#0304\n")
    for log, words in ((unknown, "cannot read this log"), (empty, "holds no frames"),
                       (foreign, "no frame of the log is defined by a vehicle DBC")):
        result = keidrive("replay", str(log), env=env, cwd=tmp_path)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], result.stderr


def test_missing_micropython_says_what_to_install(tmp_path, env):
    env["KEIDRIVE_MICROPYTHON"] = str(tmp_path / "nope")
    result = keidrive("run", "--cycle", "hwfet", env=env, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "KEIDRIVE_MICROPYTHON" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_run_on_a_channel_with_a_watcher_already_attached(tmp_path, env, monkeypatch):
    """A watcher on the channel before the run starts must not be taken for
    the firmware: the drive waits for the firmware itself, and both see every frame."""
    import can

    monkeypatch.setenv("KEIDRIVE_BUS_DIR", env["KEIDRIVE_BUS_DIR"])
    watcher = can.Bus(interface="keidrive", channel="watched")
    seen = [0]
    driving = threading.Event()
    driving.set()

    def watch():  # reading as it goes, as cantools monitor does (a client that stops reading drops)
        while True:
            if watcher.recv(1.0) is not None:
                seen[0] += 1
            elif not driving.is_set():
                return

    reader = threading.Thread(target=watch)
    reader.start()
    try:
        result = keidrive("run", "--vehicle", "alto-na", "--cycle", "hwfet", "--bus", "keidrive:watched", "--json",
                          "--plot", str(tmp_path / "p.png"), env=env)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["firmware"]["distance_km"] == pytest.approx(report["truth"]["distance_km"], rel=0.005)
        assert report["firmware"]["fuel_l"] == pytest.approx(report["truth"]["fuel_l"], rel=0.005)
    finally:
        driving.clear()
        reader.join()
        watcher.shutdown()
    assert seen[0] == report["frames"]
