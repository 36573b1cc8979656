"""The subscriber: ``keidrive/+/#`` from a broker into the DuckDB tables.

paho-mqtt receives on its own thread and hands each message over a queue;
``process`` (the caller's thread, the one that owns the database) checks
them (keidrive.collect.schema), stores a batch in one transaction and only
then acknowledges them to the broker (manual PUBACKs on a persistent
session): a collector stopped or killed before its commit gets the same
messages again, and the ``received`` ledger keeps one copy of each. A
message that fails its check is counted and logged in one line with the
reason, acknowledged and dropped; nothing a device sends can stop it.
"""

from __future__ import annotations

import queue
import ssl
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KeidriveError
from . import schema, store

TOPIC = "keidrive/+/#"
CONNECT_TIMEOUT_S = 15.0
BATCH = 500


@dataclass
class Broker:
    """Where to subscribe: an mqtt:// or mqtts:// URL and its credentials."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None
    ca: str | None = None

    @classmethod
    def parse(cls, url: str, username=None, password_file=None, ca=None) -> Broker:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise KeidriveError(f"--broker {url!r}: {error}") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or parts.path not in ("", "/"):
            raise KeidriveError(f"--broker wants mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {url!r}")
        if parts.password is not None:
            raise KeidriveError("--broker: no password in the URL (it would show in the process list): "
                                "--password-file")
        password = None
        if password_file is not None:
            try:
                password = Path(password_file).read_text().splitlines()[0] if Path(password_file).stat().st_size \
                    else ""
            except (OSError, UnicodeDecodeError) as error:
                raise KeidriveError(f"cannot read the password file {password_file}: "
                                    f"{getattr(error, 'strerror', None) or error}") from None
        if ca is not None and not Path(ca).is_file():
            raise KeidriveError(f"--ca {ca}: no such file")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, port or (8883 if tls else 1883), tls, username or parts.username, password, ca)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass
class Stats:
    messages: int = 0  # received
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    devices: set = field(default_factory=set)
    last_device: str | None = None
    last_at: float | None = None  # time.monotonic()
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict:
        return {"messages": self.messages, "stored": self.stored, "duplicates": self.duplicates,
                "rejected": self.rejected, "rejected_by_reason": dict(self.reasons), "devices": sorted(self.devices)}


class Collector:
    def __init__(self, db_path, broker: Broker, client_id: str = "keidrive-collect", log=None):
        self.broker = broker
        self.client_id = client_id
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.db = store.connect(db_path)
        self.store = store.Store(self.db)
        self.inbox: queue.Queue = queue.Queue()
        self.stats = Stats()
        self.client = None
        self.refused: str | None = None
        self.connected = False
        self.subscriptions = 0  # SUBACKs: from then on the broker routes the devices' messages here

    # ---- the connection ---------------------------------------------------
    def start(self) -> Collector:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise KeidriveError("keidrive collect needs paho-mqtt: pip install 'keidrive[collect]'") from None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
                             manual_ack=True)
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            try:
                client.tls_set(ca_certs=self.broker.ca)
            except (ssl.SSLError, OSError) as error:
                raise KeidriveError(f"--ca {self.broker.ca}: not a CA certificate ({error})") from None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(1, 30)
        try:
            client.connect(self.broker.host, self.broker.port, keepalive=30)
        except ssl.SSLError as error:
            raise KeidriveError(f"{self.broker.url}: TLS failed ({error.reason or error})") from None
        except OSError as error:
            raise KeidriveError(f"cannot reach the broker at {self.broker.url} "
                                f"({error.strerror or error})") from None
        self.client = client
        client.loop_start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not self.connected and self.refused is None:
            if time.monotonic() > deadline:
                self.close()
                raise KeidriveError(f"the broker at {self.broker.url} did not accept the connection within "
                                    f"{CONNECT_TIMEOUT_S:.0f} s")
            time.sleep(0.02)
        if self.refused is not None:
            self.close()
            raise KeidriveError(f"the broker at {self.broker.url} refused the connection: {self.refused}")
        return self

    def _on_connect(self, client, _userdata, _flags, reason, _properties):
        if reason.is_failure:
            self.refused = str(reason)
            client.disconnect()
            return
        client.subscribe(TOPIC, qos=1)
        if self.stats.messages:
            self.log(f"collect: connected again to {self.broker.url}")
        self.connected = True

    def _on_subscribe(self, *_args):
        self.subscriptions += 1

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties):
        if self.connected and reason.is_failure:
            self.log(f"collect: lost the broker at {self.broker.url} ({reason}); reconnecting")

    def _on_message(self, _client, _userdata, message):
        self.inbox.put((message.mid, message.qos, message.topic, bytes(message.payload)))

    # ---- messages ---------------------------------------------------------
    def process(self, timeout: float = 0.2) -> int:
        """Store what has arrived (waiting up to ``timeout`` for the first):
        the number of messages handled."""
        batch = []
        try:
            batch.append(self.inbox.get(timeout=timeout))
            while len(batch) < BATCH:
                batch.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        if not batch:
            return 0
        valid = []
        for _mid, _qos, topic, payload in batch:
            self.stats.messages += 1
            try:
                message = schema.parse(topic, payload)
            except schema.Invalid as why:
                self._reject(topic, str(why))
                continue
            valid.append(message)
            self.stats.devices.add(message.device)
            self.stats.last_device = message.device
            self.stats.last_at = time.monotonic()
        if valid:
            self._store(valid)
        for mid, qos, _topic, _payload in batch:  # after the commit: a crash before it means a redelivery
            if qos:
                self.client.ack(mid, qos)
        return len(batch)

    def _store(self, valid) -> None:
        import duckdb

        try:
            stored, duplicates = self.store.apply(valid)
        except duckdb.Error:
            # one of them cannot be stored (a figure past the column's range):
            # one at a time, so only that one is refused
            stored = duplicates = 0
            for message in valid:
                try:
                    s, d = self.store.apply([message])
                except duckdb.Error as error:
                    self._reject(f"keidrive/{message.device}/{message.kind}",
                                 f"cannot be stored ({str(error).splitlines()[0][:80]})")
                    continue
                stored, duplicates = stored + s, duplicates + d
        self.stats.stored += stored
        self.stats.duplicates += duplicates

    def _reject(self, topic: str, why: str) -> None:
        self.stats.rejected += 1
        self.stats.reasons[why.split(" (")[0][:60]] += 1
        shown = topic[:80].encode("ascii", "replace").decode()
        self.log(f"collect: rejected a message on {shown!r}: {why}")

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None
        if self.db is not None:
            self.db.close()
            self.db = None
