"""An OBD-II capture replayed into the firmware's OBD-II client, beside a
direct decode of the same capture.

``replay_obd(messages)`` puts the firmware (``obd: true``) on the lockstep
bus of ``keidrive.drive.obdloop`` with ``RecordedEcu`` answering it from
the capture, and decodes the capture itself with python-OBD's decoders as
the reference: each recorded reply's frames, printed as an ELM327 prints
them, go through python-OBD's ISO 15765-4 protocol parser (its own ISO-TP
reassembly) and its PID decoders; distance and fuel are the trapezoid
integrals of the decoded speed (PID 0x0D) and engine fuel rate (PID 0x5E)
over the recorded times. The firmware integrates what it polls at 10 Hz,
each answer the nearest recorded one; both therefore integrate the same
samples (the firmware holds each for as long as it stood nearest), and they
differ by how a trapezoid and a hold treat the same curve, plus the
firmware's own rounding.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from ..errors import KeidriveError
from ..io.obdcapture import read_capture
from ..sim.recorded_ecu import RecordedEcu
from .harness import firmware_config
from .obdloop import drive_ecu

# The firmware needs a vehicle module to boot; on the OBD-II port it decodes
# no DBC traffic, so any engine car's does (its kind: fuel, not energy).
OBD_VEHICLE = "kei_turbo_660"


def replay_obd(messages, *, source: str = "the log", profile: str = "jp-expressway", runtime: str = "micropython", seed: int = 0,
               on_event=None, timeout: float = 3600.0) -> dict:
    """The firmware polling the capture's ECU: ``{"report": FirmwareReport,
    "figures": lockstep figures, "capture": what the capture held,
    "reference": python-OBD's decode}``. A capture without OBD-II replies
    fails with one line naming ``source``."""
    capture = read_capture(messages, source)
    ecu = RecordedEcu(capture)
    reference = python_obd_reference(messages, capture)
    cfg = firmware_config(OBD_VEHICLE, profile, {"obd": True})
    report, figures = drive_ecu(ecu, cfg, runtime=runtime, seed=seed, timeout=timeout, on_event=on_event)
    if not report.ok:
        raise KeidriveError(report.failure())
    return {"report": report, "figures": figures, "capture": describe(capture, ecu), "reference": reference}


def describe(capture, ecu: RecordedEcu) -> dict:
    """What the capture held: its JSON figures (``keidrive replay --obd --json``)."""
    polls = [np.median(np.diff(times)) for (svc, _pid), (times, _v) in ecu.series.items()
             if svc == 0x01 and len(times) > 1]
    return {
        "reply_id": hex(capture.reply_id),
        "replies": len(capture.replies),
        "requests": capture.requests,
        "duration_s": round(capture.duration_s, 3),
        "pids": [f"{pid:02X}" for pid in ecu.pids],
        "poll_interval_s": round(float(np.median(polls)), 3) if polls else None,
        "response_delay_ms": round(capture.response_delay_s * 1000, 2),
        "padding": None if capture.padding is None else f"{capture.padding:02X}",
        "multi_frame_replies": sum(len(r.frames) > 1 for r in capture.replies),
        "broken_replies": capture.broken,
        "other_ecus": capture.other_ecus,
    }


# --- the reference: python-OBD's decode of the capture ------------------------------

def python_obd():
    """The ``obd`` package (python-OBD), or one line saying how to get it."""
    # pint (python-OBD's units) takes any importable "mip" for the MIP solver;
    # the MicroPython board stubs install a stub-only "mip" that breaks it
    mip = sys.modules.get("mip")
    if mip is None and "mip" not in sys.modules and importlib.util.find_spec("mip") is not None:
        import mip
    if mip is not None and not hasattr(mip, "model"):
        sys.modules["mip"] = None  # type: ignore[assignment]
    try:
        import obd
    except ImportError:
        raise KeidriveError("the reference decode needs python-OBD: pip install obd") from None
    return obd


def python_obd_reference(messages, capture) -> dict:
    """Distance and fuel from python-OBD's decode of the capture's speed and
    fuel-rate replies (trapezoid over their recorded times), or null where
    the capture lacks the PID."""
    obd = python_obd()
    protocol_class = (obd.protocols.ISO_15765_4_29bit_500k if capture.extended
                      else obd.protocols.ISO_15765_4_11bit_500k)
    protocol = protocol_class([])
    speed = obd.commands.SPEED
    fuel_rate = obd.commands.FUEL_RATE
    series = {speed: ([], []), fuel_rate: ([], [])}
    for t, lines in _elm_messages(messages, capture):
        parsed = protocol(lines)
        data = parsed[0].data if parsed else b""
        for command, (times, values) in series.items():
            if bytes(data[:2]) == bytes([0x41, command.pid]):
                response = command(parsed)
                if response.value is not None:
                    times.append(t)
                    values.append(response.value.to("kph" if command is speed else "L/h").magnitude)
    distance = _integral_h(*series[speed])
    fuel = _integral_h(*series[fuel_rate])
    return {
        "decoder": f"python-OBD {obd.__version__}",
        "distance_km": None if distance is None else round(distance, 6),
        "fuel_l": None if fuel is None else round(fuel, 6),
        "km_per_l": round(distance / fuel, 3) if distance and fuel else None,
        "speed_samples": len(series[speed][0]),
        "fuel_rate_samples": len(series[fuel_rate][0]),
    }


def _elm_messages(messages, capture):
    """(t, lines) per reply of the capture's ECU: its frames as an ELM327
    with headers on prints them ("7E8 03 41 0D 2A CC CC CC CC"), a single
    frame alone, a first frame with the consecutive frames after it."""
    open_lines = []
    for msg in messages:
        if msg.arbitration_id != capture.reply_id or bool(msg.is_extended_id) != capture.extended \
                or msg.is_error_frame or msg.is_remote_frame or not msg.data:
            continue
        header = f"{msg.arbitration_id:08X}" if capture.extended else f"{msg.arbitration_id:03X}"
        line = header + " " + " ".join(f"{b:02X}" for b in msg.data)
        kind = msg.data[0] >> 4
        t = msg.timestamp - capture.start
        if kind == 0:
            open_lines = []
            yield t, [line]
        elif kind == 1:
            open_lines = [line]
            first_t = t
            need = ((msg.data[0] & 0x0F) << 8 | msg.data[1]) - 6
        elif kind == 2 and open_lines:
            open_lines.append(line)
            need -= 7
            if need <= 0:
                yield first_t, open_lines
                open_lines = []


def _integral_h(times, values) -> float | None:
    """The trapezoid integral over hours of a per-hour rate sampled at ``times`` (s)."""
    if len(times) < 2:
        return None
    return float(np.trapezoid(values, times)) / 3600.0


def compare(firmware: dict, reference: dict) -> dict:
    """The firmware's distance and fuel against the reference, in % (null where either is missing)."""
    out = {}
    for key, name in (("distance_km", "distance"), ("fuel_l", "fuel")):
        ours, theirs = firmware.get(key), reference.get(key)
        out[name] = None if ours is None or not theirs else round((ours - theirs) / theirs * 100, 3)
    return out
