"""The uplink's message schema (docs/uplink.md), version 1: what ``keidrive
collect`` accepts.

Every message on ``keidrive/<device>/status|event|trip`` is one JSON object:
the envelope (``v``, ``device``, ``boot``, ``seq``, ``trip``, ``type``)
and the telemetry line's fields (docs/firmware.md). ``online`` carries
``true`` or ``false``. A message is checked whole before anything of it is
stored: sizes, the topic's shape, the device in the topic equal to the
payload's, the version, and each known field's type. Fields the schema does
not name are kept (a newer firmware adds keys, it never renames them); an
event of a type this version does not know is valid and stored as an event.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

VERSION = 1
MAX_PAYLOAD = 4096  # the firmware's largest message is 1,536 bytes
MAX_TOPIC = 128
DEVICE = re.compile(r"[A-Za-z0-9_-]{1,32}")
CLASSES = ("status", "event", "trip")
WARNING_KINDS = ("overspeed", "cannot_hold_speed", "below_minimum", "engine_stress")
LEVELS = ("none", "advisory", "caution", "critical")
STATES = ("raised", "escalated", "cleared")

NUMBER = (int, float)
_ENVELOPE = {"v": int, "device": str, "boot": int, "seq": int, "trip": int, "type": str}
# field: (type or types, required); None among the types: may be null
_STATUS = {
    "t_s": (NUMBER, True), "speed_kmh": ((*NUMBER, None), True), "distance_km": (NUMBER, True),
    "fuel_l": ((*NUMBER, None), False), "trip_km_per_l": ((*NUMBER, None), False),
    "energy_kwh": ((*NUMBER, None), False), "eco_score": ((int, None), True), "warnings": (list, True),
    "warning_level": (str, True), "valid": (bool, True), "bus": (str, True), "frames": (int, True),
    "uplink": (dict, True),
}
_UPLINK = {"queued": int, "dropped_status": int, "dropped_event": int, "dropped_trip": int, "corrupt": int}
_TRIP = {
    "vehicle": (str, True), "profile": (str, True), "duration_s": (NUMBER, True), "distance_km": (NUMBER, True),
    "fuel_l": ((*NUMBER, None), False), "km_per_l": ((*NUMBER, None), False), "energy_kwh": ((*NUMBER, None), False),
    "wh_per_km": ((*NUMBER, None), False), "eco_score": ((int, None), True), "warning_count": (int, True),
    "warnings_by_kind": (dict, False), "frames": (int, True), "restored": (bool, False),
}
_WARNING = {"kind": (str, True), "level": (str, True), "state": (str, True), "t_s": (NUMBER, True),
            "speed_kmh": ((*NUMBER, None), False)}
_SIGNAL = {"state": (str, True), "name": (str, True), "t_s": (NUMBER, True)}
_SOURCE = {"state": (str, True), "name": (str, True), "reason": (str, True), "t_s": (NUMBER, True)}
_BOOT = {"reset_cause": (str, True), "restored": (bool, True)}
_EVENTS = {"warning": _WARNING, "signal": _SIGNAL, "source": _SOURCE, "boot": _BOOT, "info": {},
           "error": {"message": (str, True)}}


class Invalid(ValueError):
    """Why a message was refused (one line)."""


@dataclass
class Message:
    device: str
    kind: str  # status, event, trip or online
    body: dict  # the JSON object (online: {"online": bool})
    text: str  # the payload as received (a valid message is UTF-8 JSON)

    @property
    def key(self) -> tuple[str, int, int]:
        return self.device, self.body["boot"], self.body["seq"]


def _reject_constant(name):
    raise Invalid(f"{name} is not a JSON number")


def parse(topic: str, payload: bytes) -> Message:
    """The message, or Invalid saying why not."""
    if len(topic) > MAX_TOPIC:
        raise Invalid(f"topic longer than {MAX_TOPIC} characters")
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "keidrive" or not DEVICE.fullmatch(parts[1]):
        raise Invalid(f"topic {topic[:60]!r} is not keidrive/<device>/<class>")
    device, kind = parts[1], parts[2]
    if len(payload) > MAX_PAYLOAD:
        raise Invalid(f"{len(payload)} bytes, over the {MAX_PAYLOAD}-byte limit")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("not UTF-8") from None
    if kind == "online":
        if text not in ("true", "false"):
            raise Invalid("online must be true or false")
        return Message(device, kind, {"online": text == "true"}, text)
    if kind not in CLASSES:
        raise Invalid(f"unknown topic class {kind[:20]!r}")
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except Invalid:
        raise
    except (ValueError, RecursionError) as error:
        raise Invalid(f"not JSON ({str(error)[:60]})") from None
    if not isinstance(body, dict):
        raise Invalid("not a JSON object")
    _fields(body, {name: (kind_, True) for name, kind_ in _ENVELOPE.items()}, "envelope")
    if body["v"] != VERSION:
        raise Invalid(f"schema version {body['v']}, this collector reads {VERSION}")
    if body["device"] != device:
        raise Invalid(f"device {body['device'][:40]!r} in the payload, {device!r} in the topic")
    for name in ("boot", "seq", "trip"):
        if not 0 <= body[name] < 2**31:
            raise Invalid(f"{name} {body[name]} out of range")
    kind_type = body["type"]
    if kind == "status":
        _expect_type(kind_type, "status")
        _fields(body, _STATUS, "status")
        _fields(body["uplink"], {name: (t, True) for name, t in _UPLINK.items()}, "status uplink")
        if not all(isinstance(w, str) for w in body["warnings"]):
            raise Invalid("status warnings must be strings")
    elif kind == "trip":
        _expect_type(kind_type, "trip")
        _fields(body, _TRIP, "trip")
        by_kind = body.get("warnings_by_kind") or {}
        if not all(isinstance(k, str) and type(n) is int and n >= 0 for k, n in by_kind.items()):
            raise Invalid("trip warnings_by_kind must map kinds to counts")
    else:
        if kind_type in ("status", "trip"):
            raise Invalid(f"a {kind_type} on the event topic")
        spec = _EVENTS.get(kind_type)
        if spec is not None:
            _fields(body, spec, kind_type)
        if kind_type == "warning":
            _choice(body, "kind", WARNING_KINDS)
            _choice(body, "level", LEVELS)
            _choice(body, "state", STATES)
    return Message(device, kind, body, text)


def _expect_type(got: str, want: str) -> None:
    if got != want:
        raise Invalid(f"type {got[:20]!r} on the {want} topic")


def _choice(body: dict, name: str, allowed: tuple) -> None:
    if body[name] not in allowed:
        raise Invalid(f"warning {name} {body[name][:20]!r} is not one of {', '.join(allowed)}")


def _fields(body: dict, spec: dict, what: str) -> None:
    for name, (kinds, required) in spec.items():
        if name not in body:
            if required:
                raise Invalid(f"{what}: no {name}")
            continue
        value = body[name]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if value is None and None in kinds:
            continue
        # bool is an int to Python, never to this schema
        ok = any(k is not None and isinstance(value, k) and not (isinstance(value, bool) and k is not bool)
                 for k in kinds)
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            raise Invalid(f"{what}: {name} has the wrong type ({type(value).__name__})")
        if isinstance(value, (int, float)) and abs(value) >= 2**53:
            raise Invalid(f"{what}: {name} out of range")
        if isinstance(value, str) and len(value) > 200:
            raise Invalid(f"{what}: {name} longer than 200 characters")
        if isinstance(value, list) and len(value) > 64:
            raise Invalid(f"{what}: {name} has more than 64 items")
