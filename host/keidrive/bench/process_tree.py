"""A command and every process it starts, measured the way its user sees it:
wall time from start to exit, peak resident memory, and CPU seconds per
process (Linux procfs).

The measuring process makes itself the child subreaper, so a descendant that
outlives its parent (a bus hub lingering after the drive) is handed to it and
reaped with its exact resource usage. The command's own usage (``wait4``)
includes the children it waited for (the firmware); their share is taken
from procfs samples every ``SAMPLE_S`` (each sample is that process's
cumulative CPU time, so a sample misses at most its last ``SAMPLE_S``), and
the command's own CPU is its total minus theirs.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
import time

SAMPLE_S = 0.01
PR_SET_CHILD_SUBREAPER = 36
REAP_TIMEOUT_S = 15.0
_TICK = os.sysconf("SC_CLK_TCK")


def _subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(word) for word in children.read().split()]
    except OSError:
        pass
    return found


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux procfs), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def _peak_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


class _Sampler(threading.Thread):
    """The descendants of ``root``: command line, cumulative CPU and peak RSS
    of each, as last seen alive."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.seen: dict[int, dict] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(SAMPLE_S)
        self.sample()

    def sample(self) -> None:
        pending = _children(self.root) + [pid for pid in self.seen if pid != self.root]
        for pid in list(dict.fromkeys(pending)):
            cpu = cpu_s(pid)
            if cpu is None:
                continue
            entry = self.seen.setdefault(pid, {"cmdline": "", "cpu_s": 0.0, "rss_kib": 0})
            # A child is a copy of its parent until it runs its own program, and
            # its peak RSS until then is the parent's pages: a new program, a new peak.
            cmdline = _cmdline(pid) or entry["cmdline"]
            if cmdline != entry["cmdline"]:
                entry["cmdline"], entry["rss_kib"] = cmdline, 0
            entry["cpu_s"] = max(entry["cpu_s"], cpu)
            entry["rss_kib"] = max(entry["rss_kib"], _peak_rss_kib(pid) or 0)
            pending += [child for child in _children(pid) if child not in self.seen]


def measure(command: list[str], classify, env=None) -> dict:
    """Run ``command`` to its end: ``returncode``, ``stdout``, ``stderr``,
    ``wall_s`` and, per kind of process (``classify(cmdline)``; the command
    itself is "keidrive"), ``processes``, ``cpu_s`` and ``peak_rss_mib``."""
    _subreaper()
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    sampler = _Sampler(process.pid)
    sampler.start()
    output: dict = {}
    readers = [threading.Thread(target=lambda name=name, stream=stream: output.__setitem__(name, stream.read()))
               for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    sampler.stop.set()
    sampler.join()
    # Orphans (a hub lingering after its last client) came to this process: reap them.
    orphans = {}
    deadline = time.monotonic() + REAP_TIMEOUT_S
    for pid, entry in sampler.seen.items():
        while time.monotonic() < deadline:
            try:
                reaped, _, orphan_usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                break  # not ours: its parent reaped it
            if reaped:
                orphans[pid] = orphan_usage.ru_utime + orphan_usage.ru_stime
                entry["rss_kib"] = max(entry["rss_kib"], orphan_usage.ru_maxrss)
                break
            time.sleep(0.02)
    kinds: dict = {}
    waited = 0.0
    for pid, entry in sampler.seen.items():
        cpu = orphans.get(pid, entry["cpu_s"])
        if pid not in orphans:
            waited += cpu
        kind = kinds.setdefault(classify(entry["cmdline"]), {"processes": 0, "cpu_s": 0.0, "peak_rss_mib": 0.0})
        kind["processes"] += 1
        kind["cpu_s"] += cpu
        kind["peak_rss_mib"] = max(kind["peak_rss_mib"], entry["rss_kib"] / 1024)
    own = max(0.0, usage.ru_utime + usage.ru_stime - waited)
    # ru_maxrss of wait4 is the larger of the process's own and its reaped children's
    kinds["keidrive"] = {"processes": 1, "cpu_s": own, "peak_rss_mib": usage.ru_maxrss / 1024}
    for kind in kinds.values():
        kind["cpu_s"] = round(kind["cpu_s"], 3)
        kind["peak_rss_mib"] = round(kind["peak_rss_mib"], 1)
    return {
        "returncode": process.returncode,
        "stdout": output["stdout"].decode("utf-8", "replace"),
        "stderr": output["stderr"].decode("utf-8", "replace"),
        "wall_s": wall,
        "processes": kinds,
    }
