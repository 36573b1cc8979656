"""keidrive as a process among others: stopped by Ctrl-C, ``kill`` or a
closing terminal, its telemetry reader going away, files on stdin, a folder
where a file was meant. Each command runs as a user runs it, in its own
session so the signals sent here reach only it; every wait has a deadline.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SHORT_CYCLE, keidrive, micropython_or_skip, one_line_error

DEADLINE_S = 120


def descendants(pid: int) -> set:
    """Every process below ``pid`` (procfs)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {seconds} s")


@pytest.fixture
def user_env(tmp_path):
    """The environment of a user whose temporary folder and bus folder are
    this test's own, so what a run leaves behind is seen."""
    micropython_or_skip()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return dict(os.environ, TMPDIR=str(tmp), KEIDRIVE_BUS_DIR=str(tmp_path / "bus"))


def start(args, env, cwd, **kw):
    return subprocess.Popen([sys.executable, "-m", "keidrive", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)


def finish(process, seconds=DEADLINE_S):
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"keidrive did not end within {seconds} s of being stopped")
    return process.returncode, out, err


def leftovers(env) -> list:
    return sorted(p.name for p in Path(env["TMPDIR"]).glob("keidrive-*"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_a_stopped_realtime_run_cleans_up_like_ctrl_c_and_prints_the_trip_so_far(tmp_path, user_env, signum):
    (tmp_path / "short.csv").write_text(SHORT_CYCLE)
    telemetry = tmp_path / "telemetry.jsonl"
    channel = f"stop{signum}"
    run = start(["run", "--realtime", "--bus", f"keidrive:{channel}", "--cycle", "short.csv", "--no-plot",
                 "--telemetry", str(telemetry)], user_env, tmp_path)
    try:
        wait_until(lambda: telemetry.exists() and '"status"' in telemetry.read_text(), 60, "a first status line")
        children = descendants(run.pid)
        assert children and leftovers(user_env), "the firmware runs in a folder of its own"
        hub = Path(user_env["KEIDRIVE_BUS_DIR"]) / f"{channel}.sock"
        assert hub.exists()
        # Ctrl-C reaches the terminal's whole foreground group; kill and a
        # closing terminal (for a background job: nohup-less) the process
        if signum == signal.SIGINT:
            os.killpg(run.pid, signum)
        else:
            run.send_signal(signum)
        code, _out, err = finish(run)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert code == 128 + signum, err
    assert "Traceback" not in err, err
    assert "trip so far (the firmware's last status line):" in err and " km" in err, err
    wait_until(lambda: not any(running(pid) for pid in children), 10, "the firmware and its children gone")
    assert leftovers(user_env) == []
    wait_until(lambda: not hub.exists(), 15, "the channel's hub gone (no client holds it)")


def test_a_run_stopped_at_any_moment_leaves_no_folder_behind(tmp_path, user_env):
    """Ctrl-C in the lockstep drive (once in seven runs left its folder)."""
    for k, delay in enumerate((0.3, 0.7, 1.1, 1.6, 2.2, 2.9, 3.7)):
        run = start(["run", "--vehicle", "alto-na", "--cycle", "wltc-jp", "--no-plot", "--json"], user_env, tmp_path)
        time.sleep(delay)  # a moment to interrupt at, not a wait for anything
        os.killpg(run.pid, signal.SIGINT)
        code, _out, err = finish(run)
        assert code in (0, 130), err
        assert "Traceback" not in err, (delay, err)
        assert leftovers(user_env) == [], (k, delay, err)


def test_a_closed_telemetry_pipe_ends_the_run_cleanly(tmp_path, user_env):
    (tmp_path / "short.csv").write_text(SHORT_CYCLE)
    pipeline = ("set -o pipefail; python -m keidrive run --realtime --cycle short.csv --no-plot --telemetry - "
                "| python -m keidrive monitor --stdin --duration 3 --plain")
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", pipeline], env=user_env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert "the telemetry reader closed stdout: the run stopped" in done.stderr, done.stderr
    assert time.monotonic() - started < DEADLINE_S  # ended, well before its 34 s drive would have
    assert leftovers(user_env) == []


def test_monitor_reads_telemetry_from_a_file_on_stdin(tmp_path):
    status = {"type": "status", "t_s": 1.0, "speed_kmh": 42.5, "distance_km": 0.01, "fuel_l": 0.001,
              "warnings": [], "missing": [], "valid": True, "eco_score": 90}
    lines = [json.dumps(dict(status, t_s=float(t))) for t in range(1, 6)]
    lines.append(json.dumps({"type": "trip", "vehicle": "kei_turbo_660", "distance_km": 0.05}))
    path = tmp_path / "drive.jsonl"
    path.write_text("\n".join(lines))  # no newline after the last: it is still a line
    with open(path) as stdin:
        done = subprocess.run([sys.executable, "-m", "keidrive", "monitor", "--stdin", "--plain"], stdin=stdin,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "monitor: 5 status lines" in done.stderr, done.stderr
    assert "trip: vehicle=kei_turbo_660" in done.stdout


def test_dbc_compile_into_an_existing_folder_is_one_line(tmp_path):
    (tmp_path / "out").mkdir()
    result = keidrive("dbc", "compile", str(ROOT / "dbc" / "kei_ev.dbc"), "-o", str(tmp_path / "out"),
                      env=os.environ)
    one_line_error(result, "is a folder")
    assert list((tmp_path / "out").iterdir()) == []
