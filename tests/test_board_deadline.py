"""Board tools against a virtual board that never stops printing: each
operation ends by its deadline, with its result or one clear line, never a
hang and never a traceback from a reply the chatter garbled."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import Lines, micropython_or_skip

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty + procfs board (Linux)"),
]

if sys.platform.startswith("linux"):
    micropython_or_skip()  # as the virtual board finds it; a failure, not a skip, in CI

# A thread that keeps printing whatever the REPL does (Ctrl-C and soft resets
# do not stop it): output interleaves with every reply the tools read.
CHATTER = """import _thread, time
def chatter():
    n = 0
    while True:
        print("chatter", n, ">")
        n += 1
        time.sleep(0.03)
_thread.start_new_thread(chatter, ())
"""


@pytest.fixture(scope="module")
def chatty_board(tmp_path_factory):
    root = tmp_path_factory.mktemp("chatty")
    (root / "main.py").write_text(CHATTER)
    env = dict(os.environ, KEIDRIVE_BUS_DIR=str(tmp_path_factory.mktemp("bus")))
    process = subprocess.Popen(
        [sys.executable, "-m", "keidrive", "board", "--pty", "--board", "esp32", "--root", str(root),
         "--bus", "keidrive:chatty"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    first = Lines(process.stdout).first(timeout=60)
    assert first, "the board printed no port within 60 s"
    port = first.split()[-1]
    assert port.startswith("/dev/"), first
    time.sleep(1)
    yield port, env
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.parametrize("command", [
    ["config", "get"],
    ["config", "set", "transmit", "true"],
    ["flash", "--board", "esp32"],
])
def test_every_board_operation_ends_by_its_deadline(chatty_board, command):
    port, env = chatty_board
    deadline = 20
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "keidrive", *command, "--port", port, "--deadline", str(deadline)],
        capture_output=True, text=True, env=env, timeout=deadline + 30,
    )
    took = time.monotonic() - started
    assert took < deadline + 15, f"{command} took {took:.0f} s"
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and port in lines[0], result.stderr
    print(f"\n{' '.join(command)}: {took:.1f} s, exit {result.returncode}: "
          f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}")


def test_a_short_deadline_expires_with_one_line(chatty_board):
    # Far shorter than even a flash with nothing to copy (the board was
    # flashed above): the deadline, not the work, ends it.
    port, env = chatty_board
    result = subprocess.run(
        [sys.executable, "-m", "keidrive", "flash", "--board", "esp32", "--port", port, "--deadline", "0.2"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert port in line and ("0.2 s" in line or "did not answer" in line), line


def test_a_bad_deadline_is_one_line(chatty_board):
    port, env = chatty_board
    result = subprocess.run([sys.executable, "-m", "keidrive", "config", "get", "--port", port, "--deadline", "0"],
                            capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode != 0 and "--deadline" in result.stderr and "Traceback" not in result.stderr
