"""Real brokers for the uplink tests: mosquitto (the Debian package) started
on free loopback ports with a generated config — a user per device and an
ACL that keeps each to its own topics, a TLS listener with a CA made here —
and paho-mqtt as the independent client.

mosquitto is found on PATH (Debian puts it in /usr/sbin); without it the
tests that need it skip, and fail under CI=true.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from keidrive.bench.uplink import make_ca

START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mosquitto_or_skip() -> str:
    path = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if path is None or shutil.which("mosquitto_passwd") is None:
        why = "mosquitto and mosquitto_passwd (Debian: apt install mosquitto) are needed for the broker tests"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {why}", pytrace=False)
        pytest.skip(why)
    return path


class Mosquitto:
    """mosquitto on two loopback ports: ``port`` (plain) and ``tls_port``,
    users from ``users`` (name -> password), devices limited by the ACL to
    ``keidrive/<their user name>/#`` and their discovery topics, the user
    ``collector`` reading ``keidrive/#``. Not persistent: a restart is empty."""

    def __init__(self, folder: Path, users: dict[str, str], port: int | None = None):
        self.binary = mosquitto_or_skip()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.tls = make_ca(folder / "tls")
        self.port = port or free_port()
        self.tls_port = free_port()
        self.users = dict(users)
        self.process = None
        self.log = folder / "mosquitto.log"
        self._write_users(self.users)
        (folder / "acl").write_text(
            "user collector\ntopic read keidrive/#\n\n"
            "pattern readwrite keidrive/%u/#\n"
            "pattern write homeassistant/+/keidrive_%u/+/config\n")
        # started by root, mosquitto would drop to the user "mosquitto", who
        # cannot read a test's private folder: it stays whoever runs the test
        (folder / "mosquitto.conf").write_text(
            f"user {getpass.getuser()}\n"
            "per_listener_settings false\nallow_anonymous false\npersistence false\n"
            f"password_file {folder / 'passwd'}\nacl_file {folder / 'acl'}\n"
            f"log_dest file {self.log}\nlog_type error\nlog_type warning\nlog_type notice\n"
            f"listener {self.port} 127.0.0.1\n"
            f"listener {self.tls_port} 127.0.0.1\n"
            f"cafile {self.tls['ca']}\ncertfile {self.tls['cert']}\nkeyfile {self.tls['key']}\n")

    def _write_users(self, users: dict[str, str]) -> None:
        passwd = self.folder / "passwd"
        passwd.write_text("")
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True, timeout=30,
                           capture_output=True)

    def admit(self, users: dict[str, str]) -> None:
        """Replace the users and have the running broker reload them (SIGHUP)."""
        self.users = dict(users)
        self._write_users(self.users)
        self.process.send_signal(signal.SIGHUP)

    def start(self) -> Mosquitto:
        self.process = subprocess.Popen([self.binary, "-c", str(self.folder / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        for port in (self.port, self.tls_port):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.process.stderr.read().decode()[-500:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"mosquitto is not listening on {port}") from None
                    time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def wait_for(condition, timeout: float, what: str, step: float = 0.02):
    """Poll ``condition()`` until it is true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


class Subscriber:
    """paho-mqtt subscribed to ``topics``: every message as (topic, payload, retain)."""

    def __init__(self, port: int, topics=("keidrive/#",), username=None, password=None, ca=None, client_id=None):
        import paho.mqtt.client as mqtt

        self.messages: list = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"sub-{free_port()}")
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        subscribed = []
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload), m.retain))
        self.client.on_subscribe = lambda *_: subscribed.append(True)
        self.client.connect("127.0.0.1", port)
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        wait_for(lambda: len(subscribed) == len(topics), 10, "the paho subscription")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class CollectorThread:
    """keidrive.collect's Collector storing on a thread of its own (its
    database is read after ``stop``)."""

    def __init__(self, db_path, broker):
        import threading

        from keidrive.collect import Collector

        self.lines: list = []
        self.collector = Collector(db_path, broker, log=self.lines.append).start()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.collector.process(0.05)
        while self.collector.process(0.05):
            pass

    @property
    def distinct(self) -> int:
        """(device, boot, seq) stored so far."""
        return len(self.collector.store.seen)

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the collector did not stop"
        self.collector.close()
        return self.collector.stats


class SteppedDrive:
    """The SIL firmware (keidrive.drive.harness.FirmwareProcess, virtual clock)
    fed a drive's records in pieces over its stdin, so that a test can act
    at given drive times: stop a broker, kill the firmware and start it again
    on the same data folder (its flash), and so on."""

    def __init__(self, records, config, workdir, runtime="micropython"):
        self.records = records
        self.config = config
        self.workdir = workdir
        self.runtime = runtime
        self.pos = 0
        self.lives: list = []  # the events of each firmware process, in order
        self.firmware = None

    def start(self):
        from keidrive.drive.harness import FirmwareProcess

        self.firmware = FirmwareProcess(self.config, runtime=self.runtime, workdir=self.workdir)
        self.fed = 0
        self.lives.append(self.firmware.events)
        return self

    def feed_until(self, t_s: float, timeout: float = 120):
        """Records up to drive time t_s, and wait until the firmware has
        processed them (its status lines count the frames it has seen)."""
        import numpy as np

        end = int(np.searchsorted(self.records["timestamp_us"], int(t_s * 1e6)))
        chunk = self.records[self.pos:end].tobytes()
        assert self.firmware.write(chunk), "the firmware has gone"
        self.fed += end - self.pos
        self.pos = end

        def processed():
            assert self.firmware.alive(), f"the firmware died: {self.firmware.events[-3:]}"
            frames = [e["frames"] for e in self.firmware.events[-50:] if e.get("type") == "status"]
            return (frames[-1] if frames else 0) >= self.fed - 1000  # a status line a second: within 1000 frames
        wait_for(processed, timeout, f"the firmware to process the drive up to {t_s} s")

    def kill(self):
        """A power cut: SIGKILL, nothing flushed."""
        self.firmware.process.kill()
        self.firmware.wait(30)

    def finish(self, timeout: float = 300):
        """The rest of the drive and the end of input: the last life's report."""
        self.firmware.write(self.records[self.pos:].tobytes())
        self.pos = len(self.records)
        self.firmware.close_input()
        report = self.firmware.wait(timeout)
        assert report.ok, report.failure()
        return report

    def events(self, kind):
        return [e for life in self.lives for e in life if e.get("type") == kind]
