"""Nothing lost offline: a whole drive through mosquitto (TLS, a password per
device) into keidrive collect's DuckDB, with the broker stopped for the
middle ten minutes of the drive and restarted empty, and the firmware killed
(SIGKILL: a power cut) while its messages wait in the journal.

Time is compressed: the SIL firmware runs on the drive's own clock
(lockstep), so ten minutes of driving offline take well under a second
here; the network, the broker and the collector are real.
"""

import json

import duckdb
import pytest
from conftest import micropython_or_skip
from keidrive.io import record
from keidrive.collect import Broker
from keidrive.drive.harness import firmware_config
from keidrive.sim import load_cycle, load_vehicle, simulate
from mqtt_helpers import CollectorThread, Mosquitto, SteppedDrive, wait_for

DEVICE = "kei-1"
PROFILE = "us-minitruck-35"  # 56 km/h: the Japanese WLTC raises overspeed warnings


@pytest.fixture(scope="module")
def drive():
    micropython_or_skip()
    result = simulate(load_vehicle("nbox-turbo"), load_cycle("wltc-jp"))
    return record.from_frames(result.frames)


def test_a_drive_with_the_broker_down_for_ten_minutes_and_a_power_cut_lands_once(drive, tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto", {DEVICE: "device-secret", "collector": "collector-secret"}).start()
    collector = None
    try:
        collector = CollectorThread(tmp_path / "trips.duckdb", Broker(
            "127.0.0.1", broker.tls_port, True, "collector", "collector-secret", str(broker.tls["ca"])))
        config = firmware_config("nbox-turbo", PROFILE, {
            "mqtt_url": f"mqtts://127.0.0.1:{broker.tls_port}", "mqtt_username": DEVICE,
            "mqtt_password": "device-secret", "mqtt_ca": str(broker.tls["ca"]), "device_id": DEVICE,
            "mqtt_backoff_max_s": 2, "save_interval_s": 30})
        car = SteppedDrive(drive, config, tmp_path / "board").start()
        car.feed_until(440)
        broker.stop()  # the middle ten minutes of the drive offline
        car.feed_until(800)
        car.kill()  # a power cut, with the outage's messages in the journal
        assert (tmp_path / "board" / "data" / "uplink").is_dir()
        waiting = sorted(p.name for p in (tmp_path / "board" / "data" / "uplink").glob("*.jnl"))
        car.start()  # boots again on the same flash
        car.feed_until(1040)
        # the broker back, empty (no persistence): its devices are admitted
        # once the collector has subscribed again, or what they send first
        # would find no subscriber
        broker.users = {"collector": "collector-secret"}
        broker._write_users(broker.users)
        subscribed = collector.collector.subscriptions
        broker.start()
        wait_for(lambda: collector.collector.subscriptions > subscribed, 60, "the collector to subscribe again")
        broker.admit({DEVICE: "device-secret", "collector": "collector-secret"})
        report = car.finish()
        last = [e for e in report.events if e.get("type") == "uplink" and e.get("state") == "summary"][-1]
        assert last["queued"] == 0, last  # the broker has acknowledged everything both lives journaled
        printed_warnings = len(car.events("warning"))
        store = collector.collector.store
        # the final trip is the last message journaled; the warnings as many as printed
        wait_for(lambda: (DEVICE, last["boot"], last["seq"] - 1) in store.seen
                 and store.types["warning"] >= printed_warnings, 60, "the final trip and every warning in DuckDB")
        stats = collector.stop()
        collector = None
    finally:
        if collector is not None:
            collector.stop()
        broker.stop()

    assert waiting, "the killed firmware left messages in its journal"
    final = report.trip
    db = duckdb.connect(str(tmp_path / "trips.duckdb"), read_only=True)
    trips = db.execute("SELECT device, distance_km, fuel_l, km_per_l, eco_score, warnings, frames, duration_s, "
                       "restored FROM trips").fetchall()
    assert trips == [(DEVICE, final["distance_km"], final["fuel_l"], final["km_per_l"], final["eco_score"],
                      final["warning_count"], final["frames"], final["duration_s"], True)]
    # the trip's data quality lands as the firmware printed it (its counts since the unit started
    # restart with the process the power cut killed: the trip's accumulators do not)
    stored_quality = json.loads(db.execute("SELECT quality FROM trips").fetchone()[0])
    assert stored_quality == final["quality"]
    printed = sorted((w["kind"], w["level"], w["state"], w["t_s"]) for w in car.events("warning"))
    stored = sorted((m["kind"], m["level"], m["state"], m["t_s"]) for m in map(json.loads, (
        row[0] for row in db.execute("SELECT message FROM events WHERE type = 'warning'").fetchall())))
    assert printed and stored == printed  # every warning event, each exactly once
    assert stats.rejected == 0
    print(f"\nbroker down 440..1040 s of wltc-jp, firmware killed at 800 s: {len(trips)} trip, "
          f"{len(stored)} warning events, {stats.stored} stored, {stats.duplicates} duplicates, "
          f"{len(waiting)} journal segments waiting at the kill")


def test_hours_offline_fill_the_journal_statuses_go_first_and_trips_stay(drive, tmp_path):
    """A whole drive with no broker at all, a status every 10 s into an
    8 KiB journal (the default 128 KiB holds hours of this): statuses are
    dropped and counted, every warning event and trip snapshot kept. The
    next boot finds a broker and sends what the journal held."""
    from keidrive.drive.harness import run_records
    from mqtt_helpers import free_port

    port = free_port()  # nothing listens there yet
    config = firmware_config("nbox-turbo", PROFILE, {
        "mqtt_url": f"mqtt://127.0.0.1:{port}", "device_id": DEVICE, "mqtt_username": DEVICE, "mqtt_password": "d",
        "uplink_journal_kib": 8,
        "uplink_status_s": 10, "uplink_flush_s": 1, "mqtt_backoff_max_s": 1})
    offline = run_records(drive.tobytes(), config, workdir=tmp_path / "board", timeout=300)
    assert offline.ok, offline.failure()
    first = [e for e in offline.events if e.get("type") == "uplink" and e.get("state") == "summary"][-1]
    assert first["connects"] == 0 and first["dropped_status"] > 50
    assert first["dropped_event"] == 0 and first["dropped_trip"] == 0 and first["journal_bytes"] <= 8192

    broker = Mosquitto(tmp_path / "mosquitto", {DEVICE: "d", "collector": "c"}, port=port).start()
    try:
        collector = CollectorThread(tmp_path / "trips.duckdb", Broker("127.0.0.1", port, False, "collector", "c"))
        online = run_records(b"", {**config, "uplink_flush_s": 30},
                             workdir=tmp_path / "board", timeout=120)  # boots, restores the trip, sends the journal
        assert online.ok, online.failure()
        second = [e for e in online.events if e.get("type") == "uplink" and e.get("state") == "summary"][-1]
        assert second["queued"] == 0 and second["connects"] == 1
        store = collector.collector.store
        printed = len(offline.warnings)
        wait_for(lambda: store.types["warning"] >= printed and store.types["trip"] >= 1, 60, "the kept messages")
        collector.stop()
    finally:
        broker.stop()
    db = duckdb.connect(str(tmp_path / "trips.duckdb"), read_only=True)
    assert db.execute("SELECT distance_km, warnings FROM trips").fetchall() == [
        (offline.trip["distance_km"], offline.trip["warning_count"])]
    assert db.execute("SELECT count(*) FROM events WHERE type = 'warning'").fetchone() == (printed,)
    kept = db.execute("SELECT count(*) FROM status").fetchone()[0]
    print(f"\n{first['seq']} messages formed offline, {first['dropped_status']} statuses dropped, "
          f"{kept} statuses, {printed} warning events and the trip delivered")
