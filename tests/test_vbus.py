"""The keidrive virtual CAN bus: across processes, reliable, ordered,
arbitration on frames queued together, python-can's own tools attach."""

import os
import signal
import subprocess
import sys
import time

import can
import numpy as np
import pytest
from conftest import Lines
from keidrive.drive.busio import open_bus
from keidrive.errors import KeidriveError
from keidrive.io import record
from vbus_helpers import attached


@pytest.fixture(autouse=True)
def private_bus_dir(tmp_path, monkeypatch):
    # Hubs spawned by a test inherit this, so tests never share a channel.
    monkeypatch.setenv("KEIDRIVE_BUS_DIR", str(tmp_path / "bus"))


def _records(n: int, start_us: int = 1) -> bytes:
    frames = np.zeros(n, dtype=record.DTYPE)
    frames["timestamp_us"] = start_us + np.arange(n) * 100
    frames["can_id"] = np.arange(n) % 0x7FF
    frames["dlc"] = 8
    frames["data"][:, 0] = np.arange(n) % 256
    frames["data"][:, 1] = (np.arange(n) >> 8) % 256
    return frames.tobytes()


RECEIVER = """
import sys, can
bus = can.Bus(interface="keidrive", channel="x")
print("ready", flush=True)
n, last, ordered = 0, -1, True
while True:
    msg = bus.recv(5)
    if msg is None:
        break
    index = msg.data[0] | msg.data[1] << 8
    ordered &= index == (n % 65536) and msg.timestamp >= last
    last = msg.timestamp
    n += 1
print(n, ordered, flush=True)
bus.shutdown()
"""


def test_another_process_receives_every_frame_in_order():
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    lines = Lines(receiver.stdout)  # its thread reads the output from now on: the count comes from it too
    assert (lines.first(timeout=60) or "").strip() == "ready"
    sender = can.Bus(interface="keidrive", channel="x")
    count = 200_000
    sender.send_records(_records(count))
    out = lines.first(timeout=60) or ""
    receiver.wait(timeout=60)
    sender.shutdown()
    assert out.split() == [str(count), "True"]


def test_frames_queued_together_leave_in_arbitration_order():
    sender = can.Bus(interface="keidrive", channel="arb")
    listener = can.Bus(interface="keidrive", channel="arb")
    attached(sender, 2)
    queued = [
        (0x300, 0),
        (0x100, record.FLAG_REMOTE),
        (0x100, 0),
        (0x100 << 18 | 0x5, record.FLAG_EXTENDED),  # same base ID as 0x100, extended loses
        (0x0F0, 0),
    ]
    sender.send_records(b"".join(record.pack(5000, can_id, flags, 1, b"\x01") for can_id, flags in queued))
    got = [listener.recv(2) for _ in queued]
    assert [(m.arbitration_id, m.is_extended_id, m.is_remote_frame) for m in got] == [
        (0x0F0, False, False),
        (0x100, False, False),
        (0x100, False, True),
        (0x100 << 18 | 0x5, True, False),
        (0x300, False, False),
    ]
    sender.shutdown()
    listener.shutdown()


def test_can_logger_attaches_and_records(tmp_path):
    log = tmp_path / "bus.asc"
    logger = subprocess.Popen(
        [sys.executable, "-m", "can.logger", "-i", "keidrive", "-c", "log0", "-f", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert (Lines(logger.stdout).first(timeout=60) or "").startswith("Connected to KeidriveBus")
    sender = can.Bus(interface="keidrive", channel="log0")
    for i in range(5):
        sender.send(can.Message(arbitration_id=0x1A0, data=[1, 2, 3, i], is_extended_id=False))
    time.sleep(1.0)
    logger.send_signal(signal.SIGINT)  # the logger's own way to stop and close its file
    logger.communicate(timeout=20)
    sender.shutdown()
    frames = list(can.LogReader(str(log)))
    assert [(m.arbitration_id, bytes(m.data)) for m in frames] == [(0x1A0, bytes([1, 2, 3, i])) for i in range(5)]


def test_bitrate_pacing_and_bus_load():
    bus = can.Bus(interface="keidrive", channel="paced", bitrate=125_000)
    listener = can.Bus(interface="keidrive", channel="paced")
    attached(bus, 2)
    count = 1200  # over a second of bus time at 125 kbit/s
    started = time.monotonic()
    bus.send_records(_records(count))
    for _ in range(count):
        assert listener.recv(5) is not None
    elapsed = time.monotonic() - started
    bits = count * record.frame_bits(0, 8)
    # Paced: the frames cannot cross the bus faster than the bitrate allows.
    assert elapsed >= bits / 125_000 * 0.95
    stats = bus.bus_stats()
    assert stats["frames"] == count
    assert stats["peak_load"] > 0.9
    print(f"\n{count} frames at 125 kbit/s took {elapsed:.3f} s; peak load {stats['peak_load']:.0%}")
    bus.shutdown()
    listener.shutdown()


def test_a_dead_hubs_socket_is_replaced(tmp_path):
    bus_dir = tmp_path / "bus"
    bus_dir.mkdir(mode=0o700)
    (bus_dir / "stale.sock").write_bytes(b"")
    a = can.Bus(interface="keidrive", channel="stale")
    b = can.Bus(interface="keidrive", channel="stale")
    attached(a, 2)
    a.send(can.Message(arbitration_id=0x123, data=b"\x07", is_extended_id=False))
    msg = b.recv(2)
    assert msg is not None and msg.arbitration_id == 0x123
    a.shutdown()
    b.shutdown()


def test_detect_available_configs_lists_running_channels():
    bus = can.Bus(interface="keidrive", channel="listed")
    configs = can.detect_available_configs(interfaces=["keidrive"])
    assert {"interface": "keidrive", "channel": "listed"} in configs
    bus.shutdown()


@pytest.mark.parametrize("spec", ["sim0", "keidrive:", ":sim0", "nosuchinterface:x"])
def test_bad_bus_spec_is_one_clear_error(spec):
    with pytest.raises(KeidriveError) as error:
        open_bus(spec)
    assert spec in str(error.value) and "\n" not in str(error.value)


def test_record_layout_matches_the_firmware_stream_port():
    # One layout on both sides of the stream: the firmware reads what the hub writes.
    assert record.SIZE == 24
    packed = record.pack(0x0102030405060708, 0x18FEFC17, record.FLAG_EXTENDED, 8, bytes(range(8)))
    assert packed[:8] == bytes([8, 7, 6, 5, 4, 3, 2, 1])
    assert packed[8:12] == (0x18FEFC17).to_bytes(4, "little")
    assert packed[12] == record.FLAG_EXTENDED and packed[13] == 8 and packed[16:] == bytes(range(8))
    assert os.path.basename(record.__file__) == "record.py"
