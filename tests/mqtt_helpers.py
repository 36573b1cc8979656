"""Real brokers for the uplink tests: mosquitto (the Debian package) started
on free loopback ports with a generated config — a user per device and an
ACL that keeps each to its own topics, a TLS listener with a CA made here —
and paho-mqtt as the independent client.

mosquitto is found on PATH (Debian puts it in /usr/sbin); without it the
tests that need it skip, and fail under CI=true.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

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


def make_ca(folder: Path) -> dict:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by
    it: {"ca", "cert", "key"} paths (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("keidrive test CA")).issuer_name(name("keidrive test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


class Mosquitto:
    """mosquitto on two loopback ports: ``port`` (plain) and ``tls_port``,
    users from ``users`` (name -> password), devices limited by the ACL to
    ``keidrive/<their user name>/#`` and their discovery topics, the user
    ``collector`` reading ``keidrive/#``. Not persistent: a restart is empty."""

    def __init__(self, folder: Path, users: dict[str, str]):
        self.binary = mosquitto_or_skip()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.tls = make_ca(folder / "tls")
        self.port = free_port()
        self.tls_port = free_port()
        self.users = dict(users)
        self.process = None
        self.log = folder / "mosquitto.log"
        self._write_users(self.users)
        (folder / "acl").write_text(
            "user collector\ntopic read keidrive/#\n\n"
            "pattern readwrite keidrive/%u/#\n"
            "pattern write homeassistant/+/keidrive_%u/+/config\n")
        (folder / "mosquitto.conf").write_text(
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
