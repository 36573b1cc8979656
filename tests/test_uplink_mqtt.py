"""The firmware's MQTT client (keifw/mqtt.py) against mosquitto, with
paho-mqtt as the independent client on the other side: drives published over
TLS with a password per device, the ACL holding each device to its own
topics, the last will, a broker that accepts and never reads, DNS, and the
whole command-line loop (keidrive collect, keidrive run --uplink)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import SHORT_CYCLE, keidrive, micropython_or_skip
from keidrive.io import record
from keidrive.drive.harness import firmware_config, run_records
from keidrive.sim import load_cycle, load_vehicle, simulate
from mqtt_helpers import Mosquitto, SteppedDrive, Subscriber, wait_for

USERS = {"dev-a": "a-secret", "dev-b": "b-secret", "dev-c": "c-secret", "dev-d": "d-secret",
         "collector": "collector-secret"}
# a short drive over 50 km/h on the 35 mph profile: an overspeed warning raised and cleared
CYCLE = "time_s,speed_kmh\n0,0\n2,0\n10,70\n40,70\n50,0\n54,0\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    micropython_or_skip()
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"), USERS).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    cycle = tmp_path_factory.mktemp("cycle") / "short.csv"
    cycle.write_text(CYCLE)
    return record.from_frames(simulate(load_vehicle("nbox-turbo"), load_cycle(str(cycle))).frames).tobytes()


def uplink_config(broker, device, password=None, tls=True, **more):
    return firmware_config("nbox-turbo", "us-minitruck-35", {
        "mqtt_url": f"mqtts://127.0.0.1:{broker.tls_port}" if tls else f"mqtt://127.0.0.1:{broker.port}",
        "mqtt_username": device, "mqtt_password": password or USERS[device], "device_id": device,
        **({"mqtt_ca": str(broker.tls["ca"])} if tls else {}), **more})


def summary(report):
    return [e for e in report.events if e.get("type") == "uplink" and e.get("state") == "summary"][-1]


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_a_drive_lands_whole_over_tls_with_a_password(broker, records, runtime):
    """Every message once, in the schema, with the trip's figures as the
    trip line printed them; online true, then false at a clean end."""
    sub = Subscriber(broker.tls_port, ("keidrive/dev-a/#",), "collector", USERS["collector"], broker.tls["ca"])
    try:
        report = run_records(records, uplink_config(broker, "dev-a"), runtime=runtime, timeout=120)
        assert report.ok, report.failure()
        figures = summary(report)
        assert figures["queued"] == 0 and figures["sent"] == figures["acked"] == figures["seq"]
        wait_for(lambda: sum(t.endswith("/trip") for t, _, _ in sub.messages) == 1, 30, "the trip at paho")
        wait_for(lambda: len([t for t, _, _ in sub.messages if not t.endswith("/online")]) >= figures["seq"], 30,
                 "every message at paho")
    finally:
        sub.close()
    bodies = [json.loads(p) for t, p, _ in sub.messages if not t.endswith("/online")]
    assert sorted(b["seq"] for b in bodies) == list(range(figures["seq"]))  # each once
    assert {b["boot"] for b in bodies} == {figures["boot"]} and {b["device"] for b in bodies} == {"dev-a"}
    trip = next(b for b in bodies if b["type"] == "trip")
    line = report.trip
    # (past 768 bytes the Writer sends the line in pieces: the uplink joins them)
    assert len(json.dumps({**line, "warnings": []}, separators=(",", ":"))) > 768
    assert {k: trip[k] for k in line if k != "warnings"} == {k: v for k, v in line.items() if k != "warnings"}
    assert trip["warnings_by_kind"] == {"overspeed": 1}
    assert [b["state"] for b in bodies if b["type"] == "warning"] == [w["state"] for w in report.warnings]
    # (a retained one from an earlier test comes first, flagged retained)
    assert [p for t, p, retained in sub.messages if t.endswith("/online") and not retained] == [b"true", b"false"]


def test_tls_handshakes_can_wait_until_parked(broker, records):
    """mqtt_tls_parked: no handshake while driving (the car idles at the end
    of this drive, so it never parks): everything waits in the journal and
    goes at the end of input."""
    report = run_records(records, uplink_config(broker, "dev-a", mqtt_tls_parked=True), timeout=120)
    assert report.ok, report.failure()
    kinds = [e.get("type") + ":" + e.get("state", "") for e in report.events if e.get("type") in ("trip", "uplink")]
    assert kinds == ["trip:", "uplink:connected", "uplink:summary"], kinds
    assert summary(report)["queued"] == 0


def test_the_acl_keeps_each_device_to_its_topics(broker):
    """dev-b publishing as dev-a: mosquitto's ACL drops it (MQTT 3.1.1 has no
    way to refuse a PUBLISH, so it is acknowledged and never delivered)."""
    import paho.mqtt.client as mqtt

    sub = Subscriber(broker.port, ("keidrive/#",), "collector", USERS["collector"])
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-b")
    device.username_pw_set("dev-b", USERS["dev-b"])
    device.connect("127.0.0.1", broker.port)
    device.loop_start()
    try:
        device.publish("keidrive/dev-a/trip", b'{"forged": true}', qos=1).wait_for_publish(10)
        device.publish("keidrive/dev-b/event", b'{"own": true}', qos=1).wait_for_publish(10)
        wait_for(lambda: any(t == "keidrive/dev-b/event" for t, _, _ in sub.messages), 10, "dev-b's own message")
    finally:
        device.disconnect()
        device.loop_stop()
        sub.close()
    assert [t for t, _, retained in sub.messages if "dev-a" in t and not retained] == []


def test_a_wrong_password_is_refused_and_said_so(broker, records):
    config = uplink_config(broker, "dev-c", password="not-it", uplink_flush_s=2, mqtt_backoff_max_s=1)
    report = run_records(records, config, timeout=120)
    assert report.ok, report.failure()
    reasons = {e.get("why") for e in report.events if e.get("type") == "uplink" and e.get("state") == "waiting"}
    assert "refused by the broker: not authorised" in reasons or \
        "refused by the broker: bad user name or password" in reasons, reasons
    assert summary(report)["connects"] == 0 and summary(report)["queued"] == summary(report)["seq"]
    assert "not-it" not in json.dumps(report.events)


def test_the_last_will_says_offline_when_the_board_dies(broker, records, tmp_path):
    sub = Subscriber(broker.port, ("keidrive/dev-d/online",), "collector", USERS["collector"])
    try:
        car = SteppedDrive(__import__("numpy").frombuffer(records, dtype=record.DTYPE),
                           uplink_config(broker, "dev-d", tls=False), tmp_path).start()
        # on the virtual clock the firmware's ticks (and its network steps) run
        # as the drive is fed: a second of it at a time until it is online
        t = 1
        while [p for _, p, r in sub.messages if not r] != [b"true"]:
            assert t < 50, "not online after 50 s of driving"
            car.feed_until(t)
            time.sleep(0.05)
            t += 1
        car.kill()
        wait_for(lambda: [p for _, p, r in sub.messages if not r] == [b"true", b"false"], 30, "the will")
    finally:
        sub.close()


def test_a_broker_that_accepts_and_never_reads_costs_the_drive_nothing(records, tmp_path):
    """The broker's side is a socket that accepts and never reads: CONNECT
    goes into its buffer and no CONNACK comes. The drive runs to its end with
    the trip of a drive without uplink, and the uplink says it is waiting."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        config = firmware_config("nbox-turbo", "us-minitruck-35", {
            "mqtt_url": f"mqtt://127.0.0.1:{server.getsockname()[1]}", "device_id": "stalled", "uplink_flush_s": 1})
        with_uplink = run_records(records, config, timeout=120)
        without = run_records(records, firmware_config("nbox-turbo", "us-minitruck-35"), timeout=120)
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()
    assert with_uplink.ok and without.ok
    assert with_uplink.trip == without.trip
    assert accepted and summary(with_uplink)["connects"] == 0 and summary(with_uplink)["sent"] == 0


def test_the_broker_is_found_by_name_without_blocking(broker, records):
    """The firmware's own DNS query (keifw/dns.py) to a server that answers
    (a responder written here, laying out its answer as RFC 1035 does) and
    to one that never answers: the drive is the same either way, and the
    second says why its uplink is waiting."""
    reports = {}
    for answer in (True, False):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        stop = threading.Event()
        queries = []

        def serve(sock=sock, stop=stop, answer=answer, queries=queries):
            while not stop.is_set():
                try:
                    query, peer = sock.recvfrom(512)
                except OSError:
                    continue
                queries.append(query)
                if answer:  # the question echoed, one A record pointing at it by compression
                    sock.sendto(query[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + query[12:]
                                + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04"
                                + socket.inet_aton("127.0.0.1"), peer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            config = firmware_config("nbox-turbo", "us-minitruck-35", {
                "mqtt_url": f"mqtt://broker.keidrive.test:{broker.port}", "mqtt_username": "dev-a",
                "mqtt_password": USERS["dev-a"], "device_id": "dev-a", "uplink_flush_s": 5,
                "dns_server": f"127.0.0.1:{sock.getsockname()[1]}"})
            reports[answer] = run_records(records, config, timeout=120)
        finally:
            stop.set()
            thread.join(timeout=5)
            sock.close()
        assert reports[answer].ok, reports[answer].failure()
        assert queries and b"\x06broker\x08keidrive\x04test\x00\x00\x01\x00\x01" in queries[0]
    assert summary(reports[True])["connects"] == 1 and summary(reports[True])["queued"] == 0
    assert summary(reports[False])["connects"] == 0
    assert "DNS: no answer within 3 s" in {e.get("why") for e in reports[False].events if e.get("type") == "uplink"}
    assert reports[True].trip == reports[False].trip


def test_four_vehicles_through_mosquitto_into_duckdb_from_the_command_line(broker, tmp_path):
    """keidrive collect --broker mqtts://... with its user and CA, and
    keidrive run --uplink mqtts://USER@... for four vehicles: four trips in
    DuckDB. The collector subscribes first (its persistent session keeps
    what arrives while it is away), then stops; the runs publish; a second
    collect takes what waited for it."""
    env = dict(os.environ, KEIDRIVE_BUS_DIR=str(tmp_path / "bus"))
    cycle = tmp_path / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    passwords = tmp_path / "secrets"
    passwords.mkdir(mode=0o700)
    for user, password in USERS.items():
        (passwords / user).write_text(password + "\n")
    db = tmp_path / "trips.duckdb"
    collect = [sys.executable, "-m", "keidrive", "collect", "--broker", f"mqtts://127.0.0.1:{broker.tls_port}",
               "--username", "collector", "--password-file", str(passwords / "collector"), "--ca",
               str(broker.tls["ca"]), "--db", str(db), "--client-id", "collect-cli-test"]
    first = subprocess.Popen(collect, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "subscribed" in first.stderr.readline()
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=30) == 0
    vehicles = {"dev-a": "alto-na", "dev-b": "alto-hybrid", "dev-c": "nbox-turbo", "dev-d": "sakura-ev"}
    reports = {}
    for device, vehicle in vehicles.items():
        result = keidrive("run", "--vehicle", vehicle, "--cycle", str(cycle), "--json",
                          "--uplink", f"mqtts://{device}@127.0.0.1:{broker.tls_port}", "--device-id", device,
                          "--uplink-password-file", str(passwords / device), "--uplink-ca", str(broker.tls["ca"]),
                          env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        reports[device] = json.loads(result.stdout)
        assert reports[device]["uplink"]["queued"] == 0, reports[device]["uplink"]
    second = subprocess.run(collect + ["--idle-exit", "2", "--json"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert second.returncode == 0, second.stderr
    stats = json.loads(second.stdout)
    assert stats["rejected"] == 0 and stats["devices"] == sorted(vehicles)
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        trips = dict(con.execute("SELECT device, distance_km FROM trips").fetchall())
        kinds = dict(con.execute("SELECT device, vehicle FROM devices").fetchall())
    assert trips == {d: r["firmware"]["distance_km"] for d, r in reports.items()}
    assert kinds == {d: firmware_config(v)["vehicle"] for d, v in vehicles.items()}
