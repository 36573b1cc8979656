"""The keidrive virtual bus alone: frames per second through a hub from one
sender to one receiver: bulk records read off a raw socket (the hub's own
rate, records checked on the way), and python-can's ``send``/``recv`` one
message at a time; and the hub's own CPU time per frame in each (what a
loaded machine changes least)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import can
import numpy as np

from ..io import record
from ..vbus import hub
from .process_tree import cpu_s

BULK_FRAMES = 200_000
SINGLE_FRAMES = 20_000


def _records(n: int) -> bytes:
    frames = np.zeros(n, dtype=record.DTYPE)
    frames["timestamp_us"] = 1 + np.arange(n) * 100
    frames["can_id"] = np.arange(n) % 0x7FF
    frames["dlc"] = 8
    frames["data"][:, 0] = np.arange(n) % 256
    return frames.tobytes()


def _attached(sender, clients: int) -> None:
    """Frames sent before a receiver is attached would not reach it."""
    deadline = time.monotonic() + 5
    while sender.bus_stats()["clients"] < clients:
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark's receiver did not attach to the hub")
        time.sleep(0.01)


def _per_frame_us(before: float | None, after: float | None, frames: int) -> float | None:
    return None if before is None or after is None else round((after - before) / frames * 1e6, 2)


def _timed(send, receive) -> float:
    """Seconds from the first send to the last frame received, the sender in
    a thread of its own: a receiver that falls behind holds the bus, so one
    thread doing both would wait on itself."""
    sending = threading.Thread(target=send)
    started = time.perf_counter()
    sending.start()
    receive()
    elapsed = time.perf_counter() - started
    sending.join()
    return elapsed


def _drain(sock: socket.socket, size: int) -> None:
    while size > 0:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("the keidrive bus hub went away during the benchmark")
        size -= len(chunk)


def _receive(listener, count: int) -> None:
    for _ in range(count):
        if listener.recv(5) is None:
            raise RuntimeError("the keidrive bus lost frames during the benchmark")


def _send_each(sender, count: int) -> None:
    message = can.Message(arbitration_id=0x123, data=bytes(8), is_extended_id=False)
    for _ in range(count):
        sender.send(message)


def bus_figures() -> dict:
    # A private folder and channel: the benchmark never meets another user's hub.
    with tempfile.TemporaryDirectory() as folder:
        previous = os.environ.get("KEIDRIVE_BUS_DIR")
        os.environ["KEIDRIVE_BUS_DIR"] = os.path.join(folder, "bus")
        # Started here, not by the first client, so that its CPU time can be read.
        hub_process = subprocess.Popen([sys.executable, "-m", "keidrive.vbus.hub", "bench", "--linger", "0.5"])
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(hub.socket_path("bench")) and time.monotonic() < deadline:
                time.sleep(0.01)
            sender = can.Bus(interface="keidrive", channel="bench", spawn=False)
            try:
                raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    raw.connect(hub.socket_path("bench"))
                    _attached(sender, 2)
                    bulk = _records(BULK_FRAMES)
                    cpu = cpu_s(hub_process.pid)
                    bulk_s = _timed(lambda: sender.send_records(bulk), lambda: _drain(raw, len(bulk)))
                    bulk_cpu_us = _per_frame_us(cpu, cpu_s(hub_process.pid), BULK_FRAMES)
                finally:
                    raw.close()
                listener = can.Bus(interface="keidrive", channel="bench", spawn=False)
                try:
                    _attached(sender, 2)
                    cpu = cpu_s(hub_process.pid)
                    single_s = _timed(
                        lambda: _send_each(sender, SINGLE_FRAMES), lambda: _receive(listener, SINGLE_FRAMES)
                    )
                    single_cpu_us = _per_frame_us(cpu, cpu_s(hub_process.pid), SINGLE_FRAMES)
                finally:
                    listener.shutdown()
            finally:
                sender.shutdown()
        finally:
            hub_process.wait(timeout=10)
            if previous is None:
                del os.environ["KEIDRIVE_BUS_DIR"]
            else:
                os.environ["KEIDRIVE_BUS_DIR"] = previous
    return {
        "hub_frames": BULK_FRAMES,
        "hub_fps": round(BULK_FRAMES / bulk_s),
        "hub_cpu_us_per_frame": bulk_cpu_us,
        "single_frames": SINGLE_FRAMES,
        "single_fps": round(SINGLE_FRAMES / single_s),
        "single_hub_cpu_us_per_frame": single_cpu_us,
    }
