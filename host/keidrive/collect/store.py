"""The collector's DuckDB file: what the devices sent, each message once.

Tables (columns named as the fleet tables name the same figures,
keidrive/fleet/store.py):

- ``devices``: one row per device: first and last seen, online, vehicle,
  profile, its boot, messages and duplicates, and the uplink counters of its
  last status (queued, dropped per class, corrupt records).
- ``trips``: one row per (device, trip_id): the latest snapshot (the longest
  ``duration_s``) of the trip the firmware reports, ``quality`` the trip's
  data-quality object where the firmware sends one, ``message`` the JSON.
- ``warnings``: one row per warning: raised (``start_s``), escalated
  (``level``), cleared (``end_s``); a clear without its raise is a row with
  ``start_s`` null.
- ``status``: every status message.
- ``events``: every event message (warnings, signals, boot, info, error).
- ``received``: the ledger of (device, boot, seq): a message seen again (a
  resend after a lost acknowledgement) is counted, not stored twice.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

DEFAULT_DB = "keidrive-collect.duckdb"

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device VARCHAR PRIMARY KEY, first_seen TIMESTAMP, last_seen TIMESTAMP, online BOOLEAN, vehicle VARCHAR,
    profile VARCHAR, boot BIGINT, messages BIGINT, duplicates BIGINT, queued INTEGER, dropped_status BIGINT,
    dropped_event BIGINT, dropped_trip BIGINT, corrupt BIGINT
);
CREATE TABLE IF NOT EXISTS trips (
    device VARCHAR, trip_id BIGINT, boot BIGINT, seq BIGINT, received_at TIMESTAMP, vehicle VARCHAR,
    profile VARCHAR, ok BOOLEAN, frames BIGINT, duration_s DOUBLE, distance_km DOUBLE, fuel_l DOUBLE,
    energy_kwh DOUBLE, km_per_l DOUBLE, wh_per_km DOUBLE, eco_score INTEGER, warnings INTEGER,
    warnings_by_kind MAP(VARCHAR, INTEGER), restored BOOLEAN, quality VARCHAR, message VARCHAR,
    PRIMARY KEY (device, trip_id)
);
CREATE TABLE IF NOT EXISTS warnings (
    device VARCHAR, trip_id BIGINT, boot BIGINT, seq BIGINT, kind VARCHAR, level VARCHAR, start_s DOUBLE,
    end_s DOUBLE, speed_kmh DOUBLE, received_at TIMESTAMP, PRIMARY KEY (device, boot, seq)
);
CREATE TABLE IF NOT EXISTS status (
    device VARCHAR, trip_id BIGINT, boot BIGINT, seq BIGINT, received_at TIMESTAMP, t_s DOUBLE,
    speed_kmh DOUBLE, distance_km DOUBLE, fuel_l DOUBLE, energy_kwh DOUBLE, km_per_l DOUBLE, eco_score INTEGER,
    warnings VARCHAR[], warning_level VARCHAR, valid BOOLEAN, bus VARCHAR, frames BIGINT, queued INTEGER,
    message VARCHAR, PRIMARY KEY (device, boot, seq)
);
CREATE TABLE IF NOT EXISTS events (
    device VARCHAR, trip_id BIGINT, boot BIGINT, seq BIGINT, received_at TIMESTAMP, type VARCHAR, t_s DOUBLE,
    message VARCHAR, PRIMARY KEY (device, boot, seq)
);
CREATE TABLE IF NOT EXISTS received (
    device VARCHAR, boot BIGINT, seq BIGINT, topic VARCHAR, received_at TIMESTAMP,
    PRIMARY KEY (device, boot, seq)
);
"""
TABLES = ("devices", "trips", "warnings", "status", "events", "received")


def connect(path: str | Path, read_only: bool = False):
    """The collector's database at ``path`` (created unless read-only), as
    the fleet's is opened: one clear error for a missing, foreign or locked file."""
    from ..fleet.store import connect as open_database

    return open_database(path, read_only, SCHEMA, "collect", "pip install 'keidrive[collect]'")


def is_collected(db) -> bool:
    """Was this database written by keidrive collect?"""
    return {"devices", "trips", "warnings"} <= {row[0] for row in db.execute("SHOW TABLES").fetchall()}


def _now():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Store:
    """Messages into the tables, a batch per transaction."""

    def __init__(self, db):
        from collections import Counter

        self.db = db
        self.types = Counter()  # messages stored, by type (status, trip, warning, signal, boot ...)
        self.seen = {(d, b, s) for d, b, s in db.execute("SELECT device, boot, seq FROM received").fetchall()}

    def apply(self, messages) -> tuple[int, int]:
        """Store valid messages (keidrive.collect.schema.Message) in one
        transaction: (stored, duplicates)."""
        stored = duplicates = 0
        db = self.db
        db.execute("BEGIN")
        try:
            for message in messages:
                if message.kind == "online":
                    self._device(message, online=message.body["online"])
                    stored += 1
                    continue
                if message.key in self.seen:
                    duplicates += 1
                    db.execute("UPDATE devices SET duplicates = duplicates + 1, last_seen = ? WHERE device = ?",
                               [_now(), message.device])
                    continue
                self._store(message)
                stored += 1
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
        for message in messages:
            if message.kind != "online" and message.key not in self.seen:
                self.seen.add(message.key)
                self.types[message.body["type"]] += 1
        return stored, duplicates

    def _store(self, message) -> None:
        body = message.body
        now = _now()
        device, boot, seq, trip = message.device, body["boot"], body["seq"], body["trip"]
        self.db.execute("INSERT INTO received VALUES (?, ?, ?, ?, ?)", [device, boot, seq, message.kind, now])
        self._device(message, boot=boot)
        if message.kind == "status":
            counters = body["uplink"]
            self.db.execute(
                "INSERT INTO status VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [device, trip, boot, seq, now, body["t_s"], body["speed_kmh"], body["distance_km"],
                 body.get("fuel_l"), body.get("energy_kwh"), body.get("trip_km_per_l"), body["eco_score"],
                 body["warnings"], body["warning_level"], body["valid"], body["bus"], body["frames"],
                 counters["queued"], message.text])
            self.db.execute(
                "UPDATE devices SET profile = ?, queued = ?, dropped_status = ?, dropped_event = ?, dropped_trip = ?,"
                " corrupt = ? WHERE device = ?",
                [body.get("profile"), counters["queued"], counters["dropped_status"], counters["dropped_event"],
                 counters["dropped_trip"], counters["corrupt"], device])
        elif message.kind == "trip":
            self._trip(message, now)
        else:
            self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [device, trip, boot, seq, now, body["type"], _number(body.get("t_s")), message.text])
            if body["type"] == "warning":
                self._warning(message, now)

    def _device(self, message, boot=None, online=None) -> None:
        now = _now()
        self.db.execute(
            "INSERT INTO devices (device, first_seen, last_seen, messages, duplicates) VALUES (?, ?, ?, 0, 0) "
            "ON CONFLICT DO NOTHING", [message.device, now, now])
        self.db.execute(
            "UPDATE devices SET last_seen = ?, messages = messages + 1, online = coalesce(?, online),"
            " boot = coalesce(?, boot) WHERE device = ?", [now, online, boot, message.device])

    def _trip(self, message, now) -> None:
        body = message.body
        key = [message.device, body["trip"]]
        row = self.db.execute("SELECT duration_s FROM trips WHERE device = ? AND trip_id = ?", key).fetchone()
        if row is not None and row[0] > body["duration_s"]:
            return  # an older snapshot of a trip stored further on
        by_kind = body.get("warnings_by_kind") or {}
        kinds = sorted(by_kind)
        quality = body.get("quality")
        values = [body["boot"], body["seq"], now, body["vehicle"], body["profile"], True, body["frames"],
                  body["duration_s"], body["distance_km"], body.get("fuel_l"), body.get("energy_kwh"),
                  body.get("km_per_l"), body.get("wh_per_km"), body["eco_score"], body["warning_count"],
                  kinds, [by_kind[k] for k in kinds], body.get("restored"),
                  None if quality is None else json.dumps(quality), message.text]
        columns = ("boot, seq, received_at, vehicle, profile, ok, frames, duration_s, distance_km, fuel_l, "
                   "energy_kwh, km_per_l, wh_per_km, eco_score, warnings, warnings_by_kind, restored, quality, "
                   "message")
        if row is None:
            self.db.execute(f"INSERT INTO trips (device, trip_id, {columns}) VALUES (?, ?, "
                            + ", ".join("map(?::VARCHAR[], ?::INTEGER[])" if name == "warnings_by_kind" else "?"
                                        for name in columns.split(", ")) + ")", key + values)
        else:
            sets = ", ".join(f"{name} = map(?::VARCHAR[], ?::INTEGER[])" if name == "warnings_by_kind"
                             else f"{name} = ?" for name in columns.split(", "))
            self.db.execute(f"UPDATE trips SET {sets} WHERE device = ? AND trip_id = ?", values + key)
        self.db.execute("UPDATE devices SET vehicle = ?, profile = ? WHERE device = ?",
                        [body["vehicle"], body["profile"], message.device])

    def _warning(self, message, now) -> None:
        body = message.body
        device, trip = message.device, body["trip"]
        open_row = ("SELECT boot, seq FROM warnings WHERE device = ? AND trip_id = ? AND kind = ? AND end_s IS NULL "
                    "AND start_s IS NOT NULL ORDER BY start_s DESC LIMIT 1")
        state = body["state"]
        if state != "raised":
            row = self.db.execute(open_row, [device, trip, body["kind"]]).fetchone()
            if row is not None:
                if state == "cleared":
                    self.db.execute("UPDATE warnings SET end_s = ? WHERE device = ? AND boot = ? AND seq = ?",
                                    [body["t_s"], device, *row])
                else:
                    self.db.execute("UPDATE warnings SET level = ? WHERE device = ? AND boot = ? AND seq = ?",
                                    [body["level"], device, *row])
                return
        start, end = (body["t_s"], None) if state != "cleared" else (None, body["t_s"])
        self.db.execute("INSERT INTO warnings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [device, trip, body["boot"], body["seq"], body["kind"], body["level"], start, end,
                         _number(body.get("speed_kmh")), now])


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
