"""Opening a channel is a handshake: ``can.Bus(interface="keidrive")``
returns once the hub has the client, so a frame sent right after reaches
it. A channel has one drive at a time: a second drive's claim is refused in
one line, and watchers attach as ever. The claim's control record is the
hub's own, numbered apart from the firmware's."""

import os
import re
from pathlib import Path

import can
import pytest
from conftest import SHORT_CYCLE, keidrive, one_line_error
from keidrive.io import record
from keidrive.paths import firmware_dir
from keidrive.vbus import wire
from keidrive.vbus.bus import BusInitError
from vbus_helpers import connect, raw_stats


@pytest.fixture(autouse=True)
def private_bus_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KEIDRIVE_BUS_DIR", str(tmp_path / "bus"))


def test_a_frame_sent_right_after_two_clients_open_a_channel_reaches_the_other():
    """Before the handshake 6 to 14 of 22 such frames were lost: a client's
    connect returned while it still waited in the new hub's backlog."""
    lost = 0
    for i in range(22):
        sender = can.Bus(interface="keidrive", channel=f"hello{i}")  # starts the channel's hub
        receiver = can.Bus(interface="keidrive", channel=f"hello{i}")
        sender.send(can.Message(arbitration_id=0x100 + i, data=bytes([i]), is_extended_id=False))
        msg = receiver.recv(5)
        lost += msg is None or msg.arbitration_id != 0x100 + i
        sender.shutdown()
        receiver.shutdown()
    assert lost == 0


def test_one_drive_claims_a_channel_at_a_time():
    first = can.Bus(interface="keidrive", channel="own")
    second = can.Bus(interface="keidrive", channel="own")
    watcher = can.Bus(interface="keidrive", channel="own")
    try:
        first.claim()
        first.claim()  # again: still the owner
        with pytest.raises(BusInitError, match=f"'own' is being driven by another drive \\(process {os.getpid()}\\)"):
            second.claim()
        first.send(can.Message(arbitration_id=0x123, data=b"\x01", is_extended_id=False))
        assert watcher.recv(5).arbitration_id == 0x123 and second.recv(5).arbitration_id == 0x123
        first.shutdown()
        second.claim()  # the owner left: the channel is free
    finally:
        for bus in (first, second, watcher):
            bus.shutdown()


def test_a_second_run_on_a_driven_channel_is_refused_in_one_line(tmp_path):
    env = dict(os.environ, KEIDRIVE_BUS_DIR=os.environ["KEIDRIVE_BUS_DIR"])
    cycle = tmp_path / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    driving = can.Bus(interface="keidrive", channel="sim1")
    try:
        driving.claim()
        for args in (("run", "--realtime"), ("run",)):
            one_line_error(keidrive(*args, "--cycle", str(cycle), "--bus", "keidrive:sim1", "--json", env=env,
                                    timeout=120), "keidrive bus 'sim1' is being driven by another drive")
    finally:
        driving.shutdown()
    result = keidrive("run", "--cycle", str(cycle), "--bus", "keidrive:sim1", "--json", env=env, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_claim_has_a_number_of_its_own_and_the_firmwares_records_pass_the_hub():
    """CONTROL_CLAIM is the hub's alone (6): the firmware's ACK (4) and UART
    (5) records travel through the hub to the firmware like frames, in order."""
    commands = (record.CONTROL_STATS, record.CONTROL_END_OF_DRIVE, record.CONTROL_SYNC, record.CONTROL_ACK,
                record.CONTROL_UART, record.CONTROL_CLAIM)
    assert len(set(commands)) == len(commands) and record.CONTROL_CLAIM == 6
    firmware = (Path(firmware_dir()) / "keifw" / "record.py").read_text()
    found = re.findall(r"^(CONTROL_\w+) = const\((\d+)\)", firmware, re.MULTILINE)
    assert {name: int(value) for name, value in found} == {
        "CONTROL_END_OF_DRIVE": record.CONTROL_END_OF_DRIVE, "CONTROL_SYNC": record.CONTROL_SYNC,
        "CONTROL_ACK": record.CONTROL_ACK, "CONTROL_UART": record.CONTROL_UART}
    driver = can.Bus(interface="keidrive", channel="ctl")
    listener = connect("ctl")
    try:
        raw_stats(listener)  # on the hub's list
        driver.claim()
        sent = [record.control(record.CONTROL_ACK),
                record.pack(7, record.CONTROL_UART, record.FLAG_CONTROL, 6, b"$GNRMC"),
                wire.claim_record(os.getpid()), record.pack(8, 0x123, 0, 1, b"\x01")]
        driver.send_records(b"".join(sent))
        received = []
        listener.settimeout(5)
        while len(received) < 3:
            raw = b""
            while len(raw) < record.SIZE:
                raw += listener.recv(record.SIZE - len(raw))
            received.append(record.unpack(raw)[:4])
        assert received == [(0, record.CONTROL_ACK, record.FLAG_CONTROL, 0),
                            (7, record.CONTROL_UART, record.FLAG_CONTROL, 6), (8, 0x123, 0, 1)]
    finally:
        listener.close()
        driver.shutdown()
