"""Shared by the keidrive virtual bus tests: a hub started by hand (so a test
knows its process) and a raw client that speaks records without python-can."""

import os
import socket
import subprocess
import sys
import time

from keidrive.io import record
from keidrive.vbus import hub, wire
from keidrive.vbus.channel import accepts


def start_hub(channel: str, *args: str) -> subprocess.Popen:
    """``python -m keidrive.vbus.hub CHANNEL ARGS...``, once its socket accepts."""
    process = subprocess.Popen(
        [sys.executable, "-m", "keidrive.vbus.hub", channel, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    path = hub.socket_path(channel)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if os.path.exists(path) and accepts(path):
            return process
        if process.poll() is not None:
            raise RuntimeError(f"the hub exited: {process.stderr.read().decode()}")
        time.sleep(0.02)
    process.kill()
    raise RuntimeError("the hub did not start")


def attached(bus, clients: int) -> None:
    """Wait until the hub has accepted ``clients`` clients (frames sent before
    a client is accepted never reach it)."""
    deadline = time.monotonic() + 10
    while bus.bus_stats()["clients"] < clients:
        assert time.monotonic() < deadline, "clients did not attach"
        time.sleep(0.01)


def connect(channel: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(hub.socket_path(channel))
    return sock


def raw_stats(sock: socket.socket, timeout: float = 5.0) -> tuple[dict, int]:
    """bus_stats over a raw client, and the frames that reached it before the answer."""
    sock.sendall(wire.seal(record.control(record.CONTROL_STATS)))
    sock.settimeout(timeout)
    frames = 0
    while True:
        raw = b""
        while len(raw) < record.SIZE:
            chunk = sock.recv(record.SIZE - len(raw))
            if not chunk:
                raise RuntimeError("the hub closed the connection")
            raw += chunk
        if raw[12] & record.FLAG_CONTROL and raw[8] == record.CONTROL_STATS:
            return hub.parse_stats(raw), frames
        frames += 1


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")
