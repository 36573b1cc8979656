"""Opening a channel is a handshake: ``can.Bus(interface="keidrive")``
returns once the hub has the client, so a frame sent right after reaches
it. A channel has one drive at a time: a second drive's claim is refused in
one line, and watchers attach as ever."""

import os

import can
import pytest
from conftest import SHORT_CYCLE, keidrive, one_line_error
from keidrive.vbus.bus import BusInitError


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
