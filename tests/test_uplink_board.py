"""The uplink on the virtual dev board (keidrive board --pty --uplink): an
ESP32 with its MCP2515 (the register model the driver's tests use) on the
keidrive virtual bus, a drive at recorded pace, and a broker that accepts
connections and never reads a byte. The CAN path loses no frame (the
MCP2515's overrun flags stay clear) while the uplink waits for a CONNACK
that never comes, gives up after 15 s and tries again."""

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
from conftest import micropython_or_skip

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty + procfs board (Linux)")

CHANNEL = "uplinkboard"
DRIVE_S = 25


class StalledBroker:
    """Accepts every connection and never reads from it."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.accepted = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                self.accepted.append(self.server.accept()[0])
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.server.close()


def test_a_stalled_broker_costs_the_mcp2515_no_frame(tmp_path):
    micropython_or_skip()
    env = dict(os.environ, KEIDRIVE_BUS_DIR=str(tmp_path / "bus"))
    broker = StalledBroker()
    root = tmp_path / "board"
    board = subprocess.Popen([sys.executable, "-m", "keidrive", "board", "--pty", "--board", "esp32", "--root",
                              str(root), "--bus", f"keidrive:{CHANNEL}", "--uplink",
                              f"mqtt://127.0.0.1:{broker.port}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sim = None
    try:
        port = board.stdout.readline().split()[-1]
        assert port.startswith("/dev/"), board.stderr.read()
        flashed = subprocess.run([sys.executable, "-m", "keidrive", "flash", "--port", port, "--board", "esp32",
                                  "--vehicle", "nbox-turbo"], capture_output=True, text=True, env=env, timeout=300, check=False)
        assert flashed.returncode == 0, flashed.stdout + flashed.stderr
        config = json.loads((root / "config.json").read_text())
        assert config["mqtt_url"] == f"mqtt://127.0.0.1:{broker.port}" and config["can_port"] == "mcp2515"
        sim = subprocess.Popen([sys.executable, "-m", "keidrive", "simulate", "--vehicle", "nbox-turbo", "--cycle",
                                "wltc-jp", "--bus", f"keidrive:{CHANNEL}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        log = tmp_path / "telemetry.jsonl"
        monitor = subprocess.run([sys.executable, "-m", "keidrive", "monitor", "--port", port, "--plain",
                                  "--duration", str(DRIVE_S), "--log", str(log)],
                                 capture_output=True, text=True, env=env, timeout=DRIVE_S + 60, check=False)
        assert monitor.returncode == 0, monitor.stdout + monitor.stderr
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(timeout=10)
        board.send_signal(signal.SIGTERM)
        try:
            board.wait(timeout=10)
        except subprocess.TimeoutExpired:
            board.kill()
        broker.close()
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    statuses = [e for e in events if e.get("type") == "status"]
    uplink = [e for e in events if e.get("type") == "uplink"]
    assert len(statuses) >= DRIVE_S - 8, events[-5:]
    assert {s["overruns"] for s in statuses} == {0}
    # the board took what the bus carried through its MCP2515's acceptance
    # filters: the simulator's own frames per second at that point of the
    # cycle, of the ids the generated filters pass
    from keidrive.fwconfig import firmware_module
    from keidrive.sim import load_cycle, load_vehicle, simulate

    gen = firmware_module("vehicles.kei_turbo_660")
    (mask0, _), (mask1, _) = gen.MCP2515_MASKS
    passed = [(f, mask0 if k < 2 else mask1) for k, (f, _ext) in enumerate(gen.MCP2515_FILTERS)]
    frames = simulate(load_vehicle("nbox-turbo"), load_cycle("wltc-jp")).frames
    carried = sum(1 for t, i in zip(frames["timestamp"], frames["arbitration_id"])
                  if 5.0 <= t < 15.0 and any(i & m == f & m for f, m in passed)) / 10
    # (a second's count moves with when the frames' bursts land either side of
    # a status line on a loaded machine; over the whole drive it cannot drift)
    taken = [b["frames"] - a["frames"] for a, b in itertools.pairwise(statuses) if a["frames"] > 0]
    assert len(taken) >= 10 and abs(sum(taken) - carried * len(taken)) <= 0.02 * carried * len(taken), (carried, taken)
    assert broker.accepted, "the board never connected"
    assert any(e.get("why") == "no CONNACK within 15 s" for e in uplink), uplink
