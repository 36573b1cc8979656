"""An OBD-II capture replayed into the firmware's OBD-II client
(``keidrive replay CAPTURE --obd``): the capture's ECU answering from its
recorded replies, against python-OBD's decode of the same capture.

The real capture is a CANedge recording of a 32-minute drive (requests on
0x7E0, replies on 0x7E8 padded with 0xCC, a multi-frame VIN), read from
$KEIDRIVE_SHARED/logs/css (skipped, saying so, without it; under CI=true a
missing one fails). The small captures made here check the answering rules
one by one.
"""

import json
import os
from pathlib import Path

import can
import pytest
from conftest import keidrive, micropython_or_skip, one_line_error
from keidrive.drive import obdreplay
from keidrive.io.obdcapture import read_capture
from keidrive.sim.recorded_ecu import STALE_S, RecordedEcu

CAPTURE_NAME = "obd2_drive_7512BE4D.MF4"


@pytest.fixture(scope="module")
def capture_path():
    shared = os.environ.get("KEIDRIVE_SHARED")
    path = Path(shared or "-") / "logs" / "css" / CAPTURE_NAME
    if not path.is_file():
        why = f"set KEIDRIVE_SHARED to the shared folder holding logs/css/{CAPTURE_NAME}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {why}", pytrace=False)
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def messages(capture_path):
    from keidrive.io.drivelog import read_drive_log

    return read_drive_log(capture_path).messages


def msg(t, can_id, data):
    return can.Message(timestamp=t, arbitration_id=can_id, is_extended_id=False, data=bytes(data))


def pad(*data):
    return bytes(data) + b"\xcc" * (8 - len(data))


def speed_capture(samples):
    """A recorder asking PID 0x0D alone at each (t, km/h) of ``samples``."""
    out = []
    for t, kmh in samples:
        out.append(msg(t, 0x7E0, [0x02, 0x01, 0x0D, 0x55, 0x55, 0x55, 0x55, 0x55]))
        out.append(msg(t + 0.006, 0x7E8, pad(0x03, 0x41, 0x0D, kmh)))
    return out


# --- the answering rules ------------------------------------------------------------


def test_a_request_between_two_recorded_answers_gets_the_nearer_and_the_earlier_at_halfway():
    ecu = RecordedEcu(read_capture(speed_capture([(0.0, 10), (7.0, 20), (14.0, 30)])))
    ask = bytes([0x01, 0x0D])
    # replies are stamped at their first frame: 0.006, 7.006, 14.006
    assert ecu.reply(ask, 3.0) == bytes([0x41, 0x0D, 10])
    assert ecu.reply(ask, 3.506) == bytes([0x41, 0x0D, 10])  # halfway: the earlier
    assert ecu.reply(ask, 3.51) == bytes([0x41, 0x0D, 20])
    assert ecu.reply(ask, 13.0) == bytes([0x41, 0x0D, 30])
    # outside the recording (from its first frame, the request, to its last reply) the ECU is off
    assert ecu.reply(ask, -0.001) is None and ecu.reply(ask, 14.5) is None


def test_a_gap_in_the_recording_leaves_the_pid_unanswered():
    ecu = RecordedEcu(read_capture(speed_capture([(0.0, 10), (100.0, 20)])))
    ask = bytes([0x01, 0x0D])
    assert ecu.reply(ask, 0.006 + STALE_S) == bytes([0x41, 0x0D, 10])
    assert ecu.reply(ask, 50.0) is None
    assert ecu.reply(ask, 100.006 - STALE_S) == bytes([0x41, 0x0D, 20])


def test_a_multi_pid_request_is_answered_from_each_pids_nearest_reply_and_maps_from_what_was_recorded():
    frames = speed_capture([(0.0, 10), (7.0, 20)])
    frames += [msg(2.0, 0x7E0, [0x02, 0x01, 0x5E, 0, 0, 0, 0, 0]), msg(2.005, 0x7E8, pad(0x04, 0x41, 0x5E, 0x01, 0x2C)),
               msg(9.0, 0x7E0, [0x02, 0x01, 0x5E, 0, 0, 0, 0, 0]), msg(9.005, 0x7E8, pad(0x04, 0x41, 0x5E, 0x02, 0x58))]
    frames.sort(key=lambda m: m.timestamp)
    ecu = RecordedEcu(read_capture(frames))
    # at 5.0 s speed's nearest is 7.006 (20), the fuel rate's 2.005 (0x012C)
    assert ecu.reply(bytes([0x01, 0x0D, 0x5E, 0x0C]), 5.0) == bytes([0x41, 0x0D, 20, 0x5E, 0x01, 0x2C])
    # never asked for in the recording: the maps say what it holds
    supported = ecu.reply(bytes([0x01, 0x00]), 5.0)
    word = int.from_bytes(supported[2:6], "big")
    assert word & (1 << (32 - 0x0D)) and not word & (1 << (32 - 0x0C)) and word & 1  # 0x5E: the 0x40 map exists
    assert ecu.reply(bytes([0x01, 0x0C]), 5.0) is None


def test_the_capture_is_read_as_python_obd_reads_it(messages, obd_protocol):
    """Every reply reassembled here is the message python-OBD's own ISO-TP
    parser makes of the same frames (the VIN's three frames included)."""
    capture = read_capture(messages)
    groups = list(obdreplay._elm_messages(messages, capture))
    assert len(groups) == len(capture.replies) == 7649
    for reply, (t, lines) in zip(capture.replies, groups):
        parsed = obd_protocol(lines)
        assert len(parsed) == 1 and bytes(parsed[0].data) == reply.payload, lines
        assert t == pytest.approx(reply.t)
    vin = [r for r in capture.replies if r.payload[:2] == b"\x49\x02"]
    assert len(vin) == 1 and len(vin[0].frames) == 3 and vin[0].payload[3:] == b"TMBJP7NX5NY084923"
    assert capture.padding == 0xCC and capture.reply_id == 0x7E8


@pytest.fixture(scope="module")
def obd_protocol():
    return obdreplay.python_obd().protocols.ISO_15765_4_11bit_500k([])


def test_the_recorded_ecu_puts_each_reply_on_the_bus_frame_for_frame_as_recorded(messages):
    capture = read_capture(messages)
    ecu = RecordedEcu(capture)
    checked = 0
    for reply in capture.replies:
        if reply.request is None or reply.request[:1] not in (b"\x01", b"\x09"):
            continue
        sent = []
        ecu.on_frame(0x7DF, bytes([len(reply.request), *reply.request]).ljust(8, b"\0"), reply.t - ecu.delay())
        ecu.process(reply.t, lambda can_id, ext, data: sent.append(data))
        if len(reply.frames) > 1:  # the tester's flow control, then the consecutive frames
            ecu.on_frame(0x7E0, bytes([0x30, 0, 0, 0, 0, 0, 0, 0]), reply.t + 0.04)
            for _ in range(10):
                ecu.process(reply.t + 0.04, lambda can_id, ext, data: sent.append(data))
        assert sent == reply.frames, (reply.t, reply.payload.hex())
        checked += 1
    assert checked >= 7640


# --- the whole replay ---------------------------------------------------------------


def test_replay_obd_json_gives_distance_and_fuel_within_2_percent_of_python_obd(capture_path):
    micropython_or_skip()
    result = keidrive("replay", str(capture_path), "--obd", "--json", env=os.environ, timeout=900)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    firmware, reference = out["firmware"], out["reference"]
    print("firmware", firmware["distance_km"], firmware["fuel_l"], "python-OBD", reference["distance_km"],
          reference["fuel_l"], "difference %", out["difference_pct"])
    assert firmware["fuel_method"] == "obd_fuel_rate" and firmware["obd"]["vin"] == "TMBJP7NX5NY084923"
    assert reference["speed_samples"] == reference["fuel_rate_samples"] == 273
    assert reference["distance_km"] > 20 and reference["fuel_l"] > 0.5
    assert abs(firmware["distance_km"] - reference["distance_km"]) <= 0.02 * reference["distance_km"]
    assert abs(firmware["fuel_l"] - reference["fuel_l"]) <= 0.02 * reference["fuel_l"]
    capture = out["capture"]
    assert capture["reply_id"] == "0x7e8" and capture["padding"] == "CC" and capture["multi_frame_replies"] == 1
    assert {"05", "0B", "0C", "0D", "0F", "11", "2F", "5E"} <= set(capture["pids"])


def test_replay_obd_of_a_log_without_obd_ii_is_one_line(tmp_path):
    log = tmp_path / "dbc_traffic.asc"
    with can.ASCWriter(str(log)) as writer:
        for k in range(20):
            writer.on_message_received(msg(k * 0.01, 0x123, [k, 0, 0, 0, 0, 0, 0, 0]))
    one_line_error(keidrive("replay", str(log), "--obd", env=os.environ), "no OBD-II replies")


def test_replay_obd_refuses_options_that_do_not_apply(tmp_path):
    log = tmp_path / "x.asc"
    log.write_text("")
    one_line_error(keidrive("replay", str(log), "--obd", "--bus", "keidrive:x", env=os.environ), "--bus")
