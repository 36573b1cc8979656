"""Nobody else on the keidrive virtual bus: the bus folder is checked before
it is trusted, nothing there is followed or left behind, channel names are
plain, and a hub that dies is an error, never a silent success."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import can
import pytest
from keidrive.drive.busio import open_bus
from keidrive.errors import KeidriveError
from keidrive.io import record
from vbus_helpers import attached, connect, raw_stats, start_hub


@pytest.fixture(autouse=True)
def bus_dir(tmp_path, monkeypatch):
    folder = tmp_path / "bus"
    monkeypatch.setenv("KEIDRIVE_BUS_DIR", str(folder))
    return folder


def _one_line_refusal(error, *words) -> None:
    text = str(error.value)
    assert "\n" not in text and all(word in text for word in words), text


def test_the_bus_folder_is_created_private_and_sockets_are_0600(bus_dir):
    bus = can.Bus(interface="keidrive", channel="priv")
    try:
        assert stat.S_IMODE(os.lstat(bus_dir).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(bus_dir / "priv.sock").st_mode) == 0o600
    finally:
        bus.shutdown()


def test_a_world_writable_bus_folder_is_refused(bus_dir):
    bus_dir.mkdir()
    bus_dir.chmod(0o777)
    with pytest.raises(can.CanInitializationError) as error:
        can.Bus(interface="keidrive", channel="planted")
    _one_line_refusal(error, str(bus_dir), "0777")
    assert os.listdir(bus_dir) == []  # no hub started, no socket made in it


@pytest.mark.skipif(os.getuid() != 0, reason="making a folder another user owns needs root")
def test_a_bus_folder_of_another_user_is_refused(bus_dir):
    bus_dir.mkdir(mode=0o700)
    os.chown(bus_dir, 65534, 65534)
    with pytest.raises(KeidriveError) as error:
        open_bus("keidrive:planted")
    _one_line_refusal(error, "uid 65534")


def test_a_symlinked_bus_folder_is_refused(bus_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    bus_dir.symlink_to(elsewhere)
    with pytest.raises(can.CanInitializationError) as error:
        can.Bus(interface="keidrive", channel="planted")
    _one_line_refusal(error, "symlink")
    assert os.listdir(elsewhere) == []


def test_a_planted_lock_symlink_is_never_followed_and_lock_files_are_cleaned_up(bus_dir, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    bus_dir.mkdir(mode=0o700)
    (bus_dir / "lk.sock.lock").symlink_to(victim)
    bus = can.Bus(interface="keidrive", channel="lk")
    other = can.Bus(interface="keidrive", channel="lk2")
    bus.shutdown()
    other.shutdown()
    assert victim.read_text() == "precious\n"
    assert [name for name in os.listdir(bus_dir) if name.endswith(".lock")] == []


@pytest.mark.parametrize("channel", ["-x", "--help", "a/b", "..", "a..b", ".hidden", "a\0b", "x" * 65])
def test_channel_names_must_be_plain(channel):
    with pytest.raises(can.CanInitializationError) as error:
        can.Bus(interface="keidrive", channel=channel)
    _one_line_refusal(error, "invalid keidrive bus channel")
    with pytest.raises(KeidriveError):
        open_bus(f"keidrive:{channel}")


def test_a_dead_hub_is_a_can_operation_error():
    process = start_hub("dead")
    bus = can.Bus(interface="keidrive", channel="dead", spawn=False)
    process.kill()
    process.wait()
    message = can.Message(arbitration_id=0x123, data=b"\x01", is_extended_id=False)
    with pytest.raises(can.CanOperationError) as error:
        for _ in range(1000):  # the first writes may still land in the socket buffer
            bus.send(message)
    _one_line_refusal(error, "'dead'", "hub")
    with pytest.raises(can.CanOperationError):
        bus.bus_stats()
    bus.shutdown()


def test_replay_onto_a_hub_that_dies_exits_non_zero_with_one_line(tmp_path):
    log = tmp_path / "drive.asc"
    with can.ASCWriter(str(log)) as writer:
        for i in range(300):  # 3 s at recorded pace
            writer.on_message_received(
                can.Message(timestamp=1000.0 + i / 100, arbitration_id=0x1A0, data=bytes(8), is_extended_id=False)
            )
    process = start_hub("dying")
    replay = subprocess.Popen(
        # --json: no banner before the drive, so stderr holds the error alone
        [sys.executable, "-m", "keidrive", "replay", str(log), "--bus", "keidrive:dying", "--no-firmware", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    observer = connect("dying")
    while raw_stats(observer)[0]["clients"] < 2:  # the replay is on the bus
        assert replay.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, err = replay.communicate(timeout=30)
    assert replay.returncode != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "hub" in lines[0] and "Traceback" not in err, err
    observer.close()


@pytest.mark.parametrize("spec", ["keidrive:x@", "keidrive:x@fast", "keidrive:x@0", "keidrive:x@-5"])
def test_a_bad_bitrate_is_one_clear_error(spec):
    with pytest.raises(KeidriveError) as error:
        open_bus(spec)
    _one_line_refusal(error, spec, "bitrate")


def test_bus_spec_takes_a_bitrate_that_paces_the_bus():
    bus = open_bus("keidrive:fixed@125000")
    listener = can.Bus(interface="keidrive", channel="fixed")
    attached(bus, 2)
    count = 300
    frames = b"".join(record.pack(1 + i, 0x100, 0, 8, bytes(8)) for i in range(count))
    started = time.monotonic()
    bus.send_records(frames)
    for _ in range(count):
        assert listener.recv(5) is not None
    elapsed = time.monotonic() - started
    bits = count * record.frame_bits(0, 8)
    assert elapsed >= bits / 125_000 * 0.95
    # Load is bits over the last second against the bitrate: 125 kbit/s, not the nominal 500.
    assert bus.bus_stats()["peak_load"] == pytest.approx(bits / 125_000, abs=0.02)
    bus.shutdown()
    listener.shutdown()


SHORT_CYCLE = "time_s,speed_kmh\n0,0\n2,0\n10,50\n25,50\n32,0\n34,0\n"


def test_run_drives_on_a_paced_keidrive_channel_and_refuses_a_bad_bitrate(tmp_path):
    cycle = tmp_path / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    command = [sys.executable, "-m", "keidrive", "run", "--cycle", str(cycle), "--json", "--no-plot", "--bus"]
    bad = subprocess.run([*command, "keidrive:paced@fast"], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "bitrate" in bad.stderr
    paced = subprocess.run([*command, "keidrive:paced@1000000"], capture_output=True, text=True, timeout=300, check=False)
    assert paced.returncode == 0, paced.stderr
    assert json.loads(paced.stdout)["frames"] > 10_000


@pytest.mark.parametrize("msg", [
    can.Message(arbitration_id=0x800, data=b"\x01", is_extended_id=False),
    can.Message(arbitration_id=0x20000000, data=b"\x01", is_extended_id=True),
])
def test_an_identifier_that_does_not_fit_is_refused_at_send(msg):
    bus = can.Bus(interface="keidrive", channel="ids")
    try:
        with pytest.raises(can.CanOperationError) as error:
            bus.send(msg)
        assert "bit identifier" in str(error.value)
    finally:
        bus.shutdown()
