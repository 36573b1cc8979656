"""The keidrive hub under a hostile or careless client: stray bytes and bad
records, a client that stops reading, running out of file descriptors, and an
early-stamped flood against a higher-priority frame on a paced bus."""

import resource
import threading
import time

import can
import numpy as np
import pytest
from keidrive.io import record
from keidrive.vbus import wire
from vbus_helpers import attached, connect, raw_stats, rss_kib, start_hub


@pytest.fixture(autouse=True)
def private_bus_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KEIDRIVE_BUS_DIR", str(tmp_path / "bus"))


def _frame(index: int, can_id: int = 0x100, flags: int = 0, dlc: int = 8) -> bytes:
    return record.pack(1000 + index, can_id, flags, dlc, index.to_bytes(8, "little"))


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "unsealed"])
def test_bad_records_are_refused_and_stray_bytes_resynchronise(sealed):
    seal = wire.seal if sealed else (lambda raw: raw)
    listener = can.Bus(interface="keidrive", channel="stray")
    sender = connect("stray")
    attached(listener, 2)
    bad = [
        b"\x13\x37\x00\xff\x42",  # stray bytes between records
        _frame(90, dlc=255),
        _frame(91, can_id=0x800),  # 12 bits in an 11-bit identifier
        _frame(92, can_id=0x20000000, flags=record.FLAG_EXTENDED),  # 30 bits
        _frame(93, flags=0x40),  # an unknown flag
        record.pack(0, 0x1002, record.FLAG_CONTROL, 0, b""),  # a command past the byte the firmware reads
    ]
    stream = b""
    for index, garbage in enumerate(bad):
        stream += seal(_frame(index)) + (garbage if len(garbage) < record.SIZE else seal(garbage))
    stream += seal(_frame(len(bad)))
    sender.sendall(stream)
    got = [listener.recv(2) for _ in range(len(bad) + 1)]
    assert None not in got
    assert [(m.arbitration_id, int.from_bytes(m.data, "little")) for m in got] == [
        (0x100, i) for i in range(len(bad) + 1)
    ]
    assert listener.recv(0.3) is None  # nothing bad came through after them
    stats, _ = raw_stats(sender)
    assert stats["rejected"] == len(bad)
    sender.close()
    listener.shutdown()


def test_a_client_that_stops_reading_cannot_grow_the_hub_without_bound():
    hub = start_hub("idle", "--queue-limit", "20000", "--stall", "0.5")
    idle = [can.Bus(interface="keidrive", channel="idle", spawn=False) for _ in range(4)]
    sender = can.Bus(interface="keidrive", channel="idle", spawn=False)
    try:
        assert sender.bus_stats()["clients"] == 5
        chunk = np.zeros(200_000, dtype=record.DTYPE)  # 4.8 MB for each idle client if the hub kept it
        chunk["can_id"] = 0x123
        chunk["dlc"] = 8
        sender.send_records(chunk.tobytes())
        assert sender.bus_stats(timeout=30)["frames"] == len(chunk)
        warm = rss_kib(hub.pid)  # the allocator's first growth is not a queue's
        for _ in range(3):
            sender.send_records(chunk.tobytes())
        assert sender.bus_stats(timeout=30)["frames"] == 4 * len(chunk)
        grown_mib = (rss_kib(hub.pid) - warm) / 1024
        print(f"\nhub RSS grew {grown_mib:.1f} MiB over 600000 more frames to 4 clients that never read")
        assert grown_mib < 4  # unbounded: 4 x 14.4 MB
        # What an idle client missed is counted, and it still gets what it can hold.
        stats = idle[0].bus_stats(timeout=30)
        received = len(idle[0]._inbox) // record.SIZE
        assert stats["dropped"] > 0 and stats["dropped"] + received == 4 * len(chunk)
    finally:
        for bus in idle + [sender]:
            bus.shutdown()
        hub.kill()
        hub.wait()


def test_a_slow_reader_holds_the_bus_and_loses_nothing():
    hub = start_hub("slow", "--queue-limit", "2000", "--stall", "3")
    sender = can.Bus(interface="keidrive", channel="slow", spawn=False)
    reader = can.Bus(interface="keidrive", channel="slow", spawn=False)
    try:
        assert sender.bus_stats()["clients"] == 2
        count = 60_000
        frames = np.zeros(count, dtype=record.DTYPE)
        frames["can_id"] = 0x321
        frames["timestamp_us"] = np.arange(count)
        frames["dlc"] = 2
        frames["data"][:, 0] = np.arange(count) % 256
        frames["data"][:, 1] = np.arange(count) // 256 % 256
        # Another thread sends: its sends wait while the hub holds the bus for the reader.
        sending = threading.Thread(target=sender.send_records, args=(frames.tobytes(),))
        sending.start()
        for index in range(count):
            msg = reader.recv(5)
            assert msg is not None and msg.data[0] | msg.data[1] << 8 == index % 65536
            if index % 5000 == 0:
                time.sleep(0.3)  # far slower than the sender, but reading (well inside --stall)
        sending.join()
        assert reader.bus_stats()["dropped"] == 0
    finally:
        sender.shutdown()
        reader.shutdown()
        hub.kill()
        hub.wait()


def test_past_the_descriptor_limit_newcomers_are_refused_and_the_others_served():
    hub = start_hub("fds")
    resource.prlimit(hub.pid, resource.RLIMIT_NOFILE, (24, 24))
    a = can.Bus(interface="keidrive", channel="fds", spawn=False)
    b = can.Bus(interface="keidrive", channel="fds", spawn=False)
    crowd = []
    try:
        for _ in range(40):
            crowd.append(connect("fds"))
        time.sleep(0.3)
        assert hub.poll() is None
        a.send(can.Message(arbitration_id=0x7E8, data=b"\x02", is_extended_id=False))
        msg = b.recv(2)
        assert msg is not None and msg.arbitration_id == 0x7E8
        clients = a.bus_stats()["clients"]
        assert 2 < clients < 2 + len(crowd)  # some were refused, not all
        refused = 0
        for sock in crowd:
            sock.settimeout(0.5)
            try:
                refused += sock.recv(record.SIZE) == b""  # the hub closed it
            except TimeoutError:
                pass
        assert refused == 2 + len(crowd) - clients
        for sock in crowd:
            sock.close()
        time.sleep(0.3)
        late = can.Bus(interface="keidrive", channel="fds", spawn=False)
        assert late.bus_stats()["clients"] == 3
        late.shutdown()
    finally:
        for sock in crowd:
            sock.close()
        a.shutdown()
        b.shutdown()
        hub.kill()
        hub.wait()


def test_paced_an_early_stamped_flood_does_not_starve_a_higher_priority_frame():
    flood = can.Bus(interface="keidrive", channel="prio", bitrate=125_000)
    urgent = can.Bus(interface="keidrive", channel="prio")
    listener = can.Bus(interface="keidrive", channel="prio")
    attached(flood, 3)
    count = 400  # about 0.43 s of bus time at 125 kbit/s
    flood.send_records(b"".join(_frame(i, can_id=0x700) for i in range(count)))
    time.sleep(0.1)
    # Stamped after the whole flood, but due now and of higher priority.
    urgent.send(can.Message(timestamp=1e6, arbitration_id=0x010, data=b"\x01", is_extended_id=False))
    order = [listener.recv(5).arbitration_id for _ in range(count + 1)]
    position = order.index(0x010)
    print(f"\nthe 0x010 frame went out {position}th of {count + 1}")
    assert position < count // 2
    for bus in (flood, urgent, listener):
        bus.shutdown()


def test_an_idle_client_holds_the_bus_only_for_the_stall_time_and_a_reader_loses_nothing():
    hub = start_hub("mixed", "--queue-limit", "5000", "--stall", "1")
    sender = can.Bus(interface="keidrive", channel="mixed", spawn=False)
    idle = can.Bus(interface="keidrive", channel="mixed", spawn=False)
    reader = can.Bus(interface="keidrive", channel="mixed", spawn=False)
    try:
        attached(sender, 3)
        count = 40_000
        frames = np.zeros(count, dtype=record.DTYPE)
        frames["can_id"] = 0x456
        frames["dlc"] = 2
        frames["data"][:, 0] = np.arange(count) % 256
        frames["data"][:, 1] = np.arange(count) // 256 % 256
        got = []
        receiving = threading.Thread(target=lambda: got.extend(reader.recv(10) for _ in range(count)))
        receiving.start()
        started = time.monotonic()
        sender.send_records(frames.tobytes())
        stats = sender.bus_stats()  # answered once the idle client is let go
        receiving.join()
        held = time.monotonic() - started
        assert stats["frames"] == count
        assert [m.data[0] | m.data[1] << 8 for m in got] == [i % 65536 for i in range(count)]
        assert idle.bus_stats()["dropped"] > 0
        assert held < 10
    finally:
        for bus in (sender, idle, reader):
            bus.shutdown()
        hub.kill()
        hub.wait()
