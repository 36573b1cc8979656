"""Shared test helpers: running code in MicroPython and CPython, the DBC sets.

The tests run against the installed keidrive (the README's test command
installs it), as a user's tools would.
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue

import pytest
from keidrive.errors import KeidriveError
from keidrive.runtime import micropython_command

ROOT = Path(__file__).resolve().parents[1]


def micropython_or_skip() -> str:
    """The MicroPython unix port, found as the harness finds it (keidrive.runtime:
    $KEIDRIVE_MICROPYTHON, the interpreter's scripts folder, PATH). Without one a
    test module skips, saying what to install, except in CI (CI=true), where a
    missing runtime is a broken setup and fails."""
    try:
        return micropython_command()
    except KeidriveError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {error}", pytrace=False)
        pytest.skip(str(error), allow_module_level=True)


def run_micropython(script: str, *args: str, timeout: float = 120, heap: str | None = None) -> str:
    """Run ``script`` in the MicroPython unix port; its stdout (fails the test on error).
    ``heap``: the port's heap size (``-X heapsize=``, e.g. "64M") for a module larger than a board's."""
    options = ["-X", f"heapsize={heap}"] if heap else []
    result = subprocess.run(
        [micropython_command(), *options, "-c", script, *args], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"micropython failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def run_cpython(script: str, *args: str, timeout: float = 120) -> str:
    """The same, in a fresh CPython process."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"python failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(params=["micropython", "cpython"])
def interpreter(request):
    """Run a script under each interpreter the generated modules must support."""
    return run_micropython if request.param == "micropython" else run_cpython



# --- reading a child process with deadlines --------------------------------------


class Lines:
    """A child process's text output, read line by line by a thread, so that
    every wait on it has a deadline (reading the pipe itself waits for ever
    on a process that stops printing). ``seen``: every line read so far."""

    def __init__(self, stream):
        self.seen: list = []
        self._queue: Queue = Queue()
        self._ended = False
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, predicate, timeout: float):
        """The first line from here on for which ``predicate`` is true; None
        when the output ends or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while not self._ended:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                return None
            if line is None:
                self._ended = True
                return None
            self.seen.append(line)
            if predicate(line):
                return line
        return None

    def first(self, timeout: float):
        """The next line, or None (no output within ``timeout``)."""
        return self.until(lambda line: True, timeout)

    def text(self, timeout: float) -> str:
        """Everything read by the end of the output (or by ``timeout``)."""
        self.until(lambda line: False, timeout)
        return "".join(self.seen)


# --- the keidrive command, as a user runs it -------------------------------------

# A 34 s drive: a quick cycle for CLI tests.
SHORT_CYCLE = "time_s,speed_kmh\n0,0\n2,0\n10,50\n25,50\n32,0\n34,0\n"


def keidrive(*args, env, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "keidrive", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def one_line_error(result, words):
    """A user's mistake: a non-zero exit and one line on stderr naming ``words``, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr

# --- DBC compiler -----------------------------------------------------------------

DBC_DIR = ROOT / "dbc"
DBC_FIXTURES = ROOT / "tests" / "dbc_fixtures"
# Each shipped DBC alone, plus the edge-case fixtures compiled together.
DBC_SETS = {path.stem: [path] for path in sorted(DBC_DIR.glob("*.dbc"))}
DBC_SETS["edge_fixtures"] = [DBC_FIXTURES / "edge_cases.dbc", DBC_FIXTURES / "edge_tx.dbc"]


@pytest.fixture(params=sorted(DBC_SETS), scope="module")
def compiled_set(request, tmp_path_factory):
    """(cantools database of the set, directory holding the compiled module ``gen.py``).

    Compiled without --node: every message decoded and encodable.
    """
    import cantools
    from keidrive.dbccompiler import compile_dbc
    from keidrive.paths import firmware_dir

    paths = DBC_SETS[request.param]
    directory = tmp_path_factory.mktemp(request.param)
    (directory / "gen.py").write_text(compile_dbc(paths))
    # Generated modules import the shared runtime keifw.dbcrt from beside them.
    (directory / "keifw").symlink_to(firmware_dir() / "keifw")
    database = cantools.database.Database()
    for path in paths:
        database.add_dbc_file(str(path))
    return database, directory
