"""keidrive collect: every message checked before it is stored, each stored
once, nothing a device (or anyone on the broker) sends can stop it; the
embedded amqtt broker; one clear line for every bad option; keidrive fleet
report reading what it collected. Messages come from paho-mqtt."""

import json
import os
import signal
import subprocess
import sys

import duckdb
import pytest
from conftest import keidrive, one_line_error
from keidrive.collect import Broker, EmbeddedBroker
from mqtt_helpers import CollectorThread, free_port, wait_for


def envelope(device="dev1", boot=7, seq=0, trip=7, **fields):
    return {"v": 1, "device": device, "boot": boot, "seq": seq, "trip": trip, **fields}


STATUS = dict(type="status", t_s=60.0, speed_kmh=48.5, distance_km=0.75, fuel_l=0.04, trip_km_per_l=18.7,
              eco_score=91, warnings=[], warning_level="none", valid=True, bus="active", frames=20435,
              profile="jp-expressway",
              uplink={"queued": 1, "dropped_status": 0, "dropped_event": 0, "dropped_trip": 0, "corrupt": 0})
TRIP = dict(type="trip", vehicle="kei_turbo_660", profile="jp-expressway", duration_s=73.9, distance_km=0.819,
            fuel_l=0.037, km_per_l=21.9, energy_kwh=0.0, wh_per_km=None, eco_score=97, warning_count=1,
            warnings_by_kind={"overspeed": 1}, frames=25160, restored=False)
RAISED = dict(type="warning", kind="overspeed", level="caution", state="raised", t_s=12.5, speed_kmh=70.1)
CLEARED = dict(type="warning", kind="overspeed", level="caution", state="cleared", t_s=30.5, speed_kmh=50.0)


@pytest.fixture
def embedded():
    broker = EmbeddedBroker("127.0.0.1", free_port()).start()
    yield broker
    broker.stop()


def publisher(port):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{free_port()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def send(client, topic, payload):
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    client.publish(topic, payload, qos=1).wait_for_publish(10)


BAD = [
    ("keidrive/dev1/trip", b"\xff\xfe not utf-8", "not UTF-8"),
    ("keidrive/dev1/trip", b"{not json", "not JSON"),
    ("keidrive/dev1/trip", b"[1, 2]", "not a JSON object"),
    ("keidrive/dev1/trip", b"x" * 5000, "over the 4096-byte limit"),
    ("keidrive/dev1/trip", b'{"v": 1, "device": "dev1", "boot": 1, "seq": NaN}', "not a JSON number"),
    ("keidrive/dev1/trip", b"[" * 3000 + b"]" * 3000, "over the 4096-byte limit"),
    ("keidrive/dev1/trip", b"[" * 2000 + b"]" * 2000, "not JSON"),
    ("keidrive/dev1/trip", json.dumps({**envelope(), **TRIP, "v": 2}).encode(), "schema version 2"),
    ("keidrive/dev1/trip", json.dumps({**envelope(device="dev2"), **TRIP}).encode(), "'dev2' in the payload"),
    ("keidrive/dev1/trip", json.dumps({**envelope(), **TRIP, "distance_km": "far"}).encode(), "distance_km"),
    ("keidrive/dev1/trip", json.dumps({**envelope(), **TRIP, "eco_score": True}).encode(), "eco_score"),
    ("keidrive/dev1/status", json.dumps({**envelope(), **TRIP}).encode(), "type 'trip' on the status topic"),
    ("keidrive/dev1/event", json.dumps({**envelope(), **RAISED, "kind": "teleport"}).encode(), "kind"),
    ("keidrive/dev1/event", json.dumps({**envelope(seq=-1), **RAISED}).encode(), "seq -1 out of range"),
    ("keidrive/dev1/online", b"maybe", "online must be true or false"),
    ("keidrive/dev1/photos", b"{}", "unknown topic class"),
    ("keidrive/dev 1/trip", b"{}", "is not keidrive/<device>/<class>"),
    ("keidrive/dev1/trip/extra", b"{}", "is not keidrive/<device>/<class>"),
]


def test_bad_messages_are_refused_one_line_each_and_good_ones_stored_once(embedded, tmp_path):
    collector = CollectorThread(tmp_path / "c.duckdb", Broker.parse(embedded.url))
    client = publisher(embedded.port)
    try:
        send(client, "keidrive/dev1/online", b"true")
        for topic, payload, _ in BAD:
            send(client, topic, payload)
        good = [("keidrive/dev1/status", {**envelope(seq=1), **STATUS}),
                ("keidrive/dev1/event", {**envelope(seq=2), **RAISED}),
                ("keidrive/dev1/event", {**envelope(seq=3), **CLEARED}),
                ("keidrive/dev1/trip", {**envelope(seq=4), **TRIP}),
                ("keidrive/dev1/event", {**envelope(seq=5), "type": "quality_changed", "t_s": 40.0}),
                ("keidrive/dev1/trip", {**envelope(seq=4), **TRIP}),  # a resend: the PUBACK was lost
                ("keidrive/dev1/trip", {**envelope(seq=6), **TRIP, "duration_s": 50.0})]  # an older snapshot
        for topic, body in good:
            send(client, topic, body)
        wait_for(lambda: collector.collector.stats.messages == 1 + len(BAD) + len(good), 30, "every message")
    finally:
        client.disconnect()
        client.loop_stop()
        stats = collector.stop()
    assert stats.rejected == len(BAD) and stats.duplicates == 1
    for (topic, _payload, reason), line in zip(BAD, collector.lines, strict=True):
        assert line.startswith("collect: rejected a message on") and reason in line, (reason, line)
    db = duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True)
    assert db.execute("SELECT device, trip_id, duration_s, warnings, warnings_by_kind FROM trips").fetchall() == [
        ("dev1", 7, 73.9, 1, {"overspeed": 1})]
    assert db.execute("SELECT kind, level, start_s, end_s FROM warnings").fetchall() == [
        ("overspeed", "caution", 12.5, 30.5)]
    assert db.execute("SELECT count(*) FROM status").fetchone() == (1,)
    assert db.execute("SELECT type FROM events ORDER BY seq").fetchall() == [
        ("warning",), ("warning",), ("quality_changed",)]
    assert db.execute("SELECT online, messages, duplicates, vehicle FROM devices").fetchall() == [
        (True, 7, 1, "kei_turbo_660")]


def test_the_command_line_collects_until_interrupted(embedded, tmp_path):
    """keidrive collect --broker URL runs until SIGINT, then stores what
    has arrived and prints its summary."""
    db = tmp_path / "c.duckdb"
    process = subprocess.Popen([sys.executable, "-m", "keidrive", "collect", "--broker", embedded.url, "--db",
                                str(db), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "subscribed to keidrive/+/#" in process.stderr.readline()
        client = publisher(embedded.port)
        send(client, "keidrive/dev9/trip", {**envelope("dev9"), **TRIP})
        send(client, "keidrive/dev9/trip", b"{oops")
        client.disconnect()
        client.loop_stop()
        wait_for(lambda: "rejected a message" in process.stderr.readline(), 30, "the rejection line")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["stored"] == 1 and summary["rejected"] == 1 and summary["devices"] == ["dev9"]


def test_the_embedded_broker_and_fleet_report_on_what_was_collected(tmp_path):
    """Without --broker, collect brings its own broker on loopback; fleet
    report --db summarises the collected trips per vehicle and profile."""
    env = dict(os.environ)
    port = free_port()
    db = tmp_path / "c.duckdb"
    process = subprocess.Popen([sys.executable, "-m", "keidrive", "collect", "--listen", f"127.0.0.1:{port}",
                                "--db", str(db), "--idle-exit", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "(embedded broker)" in process.stderr.readline()
        client = publisher(port)
        for k, (device, distance) in enumerate((("a", 10.0), ("b", 30.0))):
            send(client, f"keidrive/{device}/trip", {**envelope(device, seq=k), **TRIP, "distance_km": distance})
        client.disconnect()
        client.loop_stop()
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "2 stored" in out
    result = keidrive("fleet", "report", "--db", str(db), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (group,) = report["groups"]
    assert (group["vehicle"], group["profile"], group["drives"], group["distance_km"]) == (
        "kei_turbo_660", "jp-expressway", 2, 40.0)
    text = keidrive("fleet", "report", "--db", str(db), env=env)
    assert text.returncode == 0 and "collected" in text.stdout


@pytest.mark.parametrize(("args", "words"), [
    (["--broker", "http://127.0.0.1:1883"], "--broker wants mqtt://"),
    (["--broker", "mqtt://u:p@127.0.0.1:1883"], "no password in the URL"),
    (["--broker", "mqtt://127.0.0.1:1", "--password-file", "/nonexistent"], "cannot read the password file"),
    (["--broker", "mqtts://127.0.0.1:1", "--ca", "/nonexistent.pem"], "--ca /nonexistent.pem: no such file"),
    (["--broker", "mqtt://127.0.0.1:1"], "cannot reach the broker at mqtt://127.0.0.1:1"),
    (["--listen", "nowhere"], "--listen wants HOST:PORT"),
    (["--username", "u"], "are for --broker"),
    (["--db", "/nonexistent/dir/c.duckdb", "--broker", "mqtt://127.0.0.1:1"], "does not exist"),
])
def test_bad_options_are_one_clear_line(args, words, tmp_path):
    env = dict(os.environ)
    one_line_error(keidrive("collect", "--db", str(tmp_path / "c.duckdb"), *args, env=env, timeout=60), words)


def test_a_port_in_use_is_one_clear_line(embedded, tmp_path):
    one_line_error(keidrive("collect", "--listen", f"127.0.0.1:{embedded.port}", "--db", str(tmp_path / "c.duckdb"),
                            env=dict(os.environ), timeout=60), "cannot listen on")
