"""keidrive.faults: each traffic transform does what it says, on numpy records."""

import numpy as np
import pytest

from keidrive import faults, record, sim
from keidrive.sim.frames import CRC_TABLE, codecs_for


@pytest.fixture(scope="module")
def drive():
    return record.from_frames(sim.simulate("nbox-turbo", "hwfet").frames)


def _crc_ok(codec, data):
    crc = np.full(len(data), 0xFF, np.uint8)
    for i in codec.crc_bytes:
        crc = CRC_TABLE[crc ^ data[:, i]]
    return (crc ^ 0xFF) == data[:, 7]


def _codec(can_id):
    return next(c for c in codecs_for("kei_turbo_660.dbc") if c.frame_id == can_id)


def test_drop_removes_exactly_the_window(drive):
    out = faults.apply(drive, [faults.Drop(0x1A0, 100.0, 30.0)])
    gone = (drive["can_id"] == 0x1A0) & (drive["timestamp_us"] >= 100_000_000) & (drive["timestamp_us"] < 130_000_000)
    assert len(out) == len(drive) - gone.sum()
    assert not ((out["can_id"] == 0x1A0) & (out["timestamp_us"] >= 100_000_000)
                & (out["timestamp_us"] < 130_000_000)).any()


@pytest.mark.parametrize("can_id", [0x130, 0x140, 0x1A0])  # little- and big-endian counters
def test_corrupt_counter_breaks_the_sequence_and_keeps_the_checksum_right(drive, can_id):
    codec = _codec(can_id)
    out = faults.apply(drive, [faults.CorruptCounter(can_id, 50.0, 10.0)])
    sel = (out["can_id"] == can_id) & (out["timestamp_us"] >= 50_000_000) & (out["timestamp_us"] < 60_000_000)
    before = drive[sel]["data"]
    after = out[sel]["data"]
    assert _crc_ok(codec, after).all()
    le, be = faults._words(after)
    le0, be0 = faults._words(before)
    c1 = faults._field(le, be, codec.counter).astype(np.int64)
    c0 = faults._field(le0, be0, codec.counter).astype(np.int64)
    assert ((c1 - c0) % (codec.counter.mask + 1) >= 2).all()  # never the expected +0/+1
    assert (out[~sel]["data"] == drive[~sel]["data"]).all()


def test_corrupt_checksum_makes_every_selected_crc_wrong(drive):
    codec = _codec(0x1A0)
    out = faults.apply(drive, [faults.CorruptChecksum(0x1A0, 0.0, 1e9, share=0.5)], seed=3)
    sel = out["can_id"] == 0x1A0
    bad = ~_crc_ok(codec, out[sel]["data"])
    assert 0.4 < bad.mean() < 0.6


def test_wrong_dlc_never_keeps_the_right_one(drive):
    out = faults.apply(drive, [faults.WrongDlc(0x130, 0.0, 1e9)])
    assert (out[out["can_id"] == 0x130]["dlc"] != 8).all()
    assert out["dlc"].max() <= 8


def test_error_and_remote_frames_are_flagged_and_merged_in_order(drive):
    out = faults.apply(drive, [faults.ErrorFrames(100.0, 10.0, 10.0), faults.RemoteFrames(50.0, 10.0, 10.0)])
    assert ((out["flags"] & record.FLAG_ERROR) != 0).sum() == 1000
    assert ((out["flags"] & record.FLAG_REMOTE) != 0).sum() == 500
    assert (np.diff(out["timestamp_us"].astype(np.int64)) >= 0).all()


def test_random_frames_cover_every_kind():
    rng = np.random.default_rng(0)
    recs = faults.random_frames(20000, rng, known_ids=faults.known_ids("kei_turbo_660"))
    assert set(np.unique(recs["dlc"])) == set(range(9))
    assert ((recs["flags"] & record.FLAG_ERROR) != 0).any() and ((recs["flags"] & record.FLAG_REMOTE) != 0).any()
    ext = (recs["flags"] & record.FLAG_EXTENDED) != 0
    assert recs["can_id"][ext].max() < 1 << 29 and recs["can_id"][~ext].max() < 1 << 11
    assert (recs["can_id"] == 0x1A0).sum() > 100


def test_flood_fills_the_bus_to_the_load_asked(drive):
    flood = faults.Flood(0x000, 1.0, 200.0, 5.0)
    out = faults.apply(drive, [flood])
    win = out[faults._window(out, 200.0, 5.0)]
    start, end = faults.bus_occupancy(win)
    load = np.sum(end - start) / 5e6
    assert 0.97 < load <= 1.001
    n = (win["can_id"] == 0).sum()
    assert n > 0.8 * 5.0 * 500_000 / record.frame_bits(0, 8)
    half = faults.apply(drive, [faults.Flood(0x005, 0.5, 200.0, 5.0)])
    win = half[faults._window(half, 200.0, 5.0)]
    start, end = faults.bus_occupancy(win)
    assert 0.47 < np.sum(end - start) / 5e6 < 0.53


def test_timestamp_jump_and_bus_off(drive):
    out = faults.apply(drive, [faults.TimestampJump(100.0, 20.0)])
    at = np.searchsorted(drive["timestamp_us"], 100_000_000)
    assert out["timestamp_us"][at] - drive["timestamp_us"][at] == 20_000_000
    off = faults.apply(drive, [faults.BusOff(300.0, 2.0)])
    win = off[faults._window(off, 300.0, 2.0)]
    assert len(win) == 32 and ((win["flags"] & record.FLAG_ERROR) != 0).all()


def test_faults_are_hashable_and_deterministic(drive):
    fs = (faults.RandomFrames(1000, 0.0, 10.0, "kei_turbo_660"), faults.CorruptChecksum(0x130, share=0.3))
    assert hash(fs) == hash(tuple(fs))
    assert (faults.apply(drive, fs, 7) == faults.apply(drive, fs, 7)).all()


def test_tear_modes_are_never_loaded(tmp_path):
    from keidrive.faults import PAYLOAD_LEN, crc16_ccitt, read_slot, tear_slot
    import struct

    body = b"KDT1" + struct.pack("<IH", 5, PAYLOAD_LEN) + bytes(range(256)) * (PAYLOAD_LEN // 256) \
        + bytes(PAYLOAD_LEN % 256)
    good = body + struct.pack("<H", crc16_ccitt(body))
    rng = np.random.default_rng(1)
    for mode in faults.TEAR_MODES:
        for offset in (0, 3, 10, 200, len(good) - 1):
            path = tmp_path / "slot.bin"
            path.write_bytes(good)
            assert read_slot(path)["seq"] == 5
            tear_slot(path, offset, mode, rng, old=bytes(len(good)))
            assert read_slot(path) is None, (mode, offset)
