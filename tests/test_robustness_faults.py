"""keidrive.faults: each traffic transform does what it says, on numpy records."""

import numpy as np
import pytest
from keidrive import faults, sim
from keidrive.dbccompiler.checksum import ALGORITHMS
from keidrive.io import record
from keidrive.sim.frames import codecs_for


@pytest.fixture(scope="module")
def drive():
    return record.from_frames(sim.simulate("nbox-turbo", "hwfet").frames)


def _crc_ok(codec, data):
    """CRC-8/SAE-J1850 (checked against its catalogue value in test_dbc_checksums) over bytes 0..6, in byte 7."""
    assert codec.algorithm == ALGORITHMS["CRC8_SAEJ1850"] and codec.checksum_byte == 7
    return ALGORITHMS["CRC8_SAEJ1850"].compute(data[:, :7]) == data[:, 7]


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
    le, be = faults.traffic._words(after)
    le0, be0 = faults.traffic._words(before)
    c1 = faults.traffic._field(le, be, codec.counter).astype(np.int64)
    c0 = faults.traffic._field(le0, be0, codec.counter).astype(np.int64)
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


def test_flood_takes_the_bus_share_asked(drive):
    flood = faults.Flood(0x000, 1.0, 200.0, 5.0)
    out = faults.apply(drive, [flood])
    win = out[faults.traffic._window(out, 200.0, 5.0)]
    start, end = faults.bus_occupancy(win)
    assert 0.97 < np.sum(end - start) / 5e6 <= 1.001
    n = (win["can_id"] == 0).sum()
    assert n > 0.95 * 5.0 * 500_000 / record.frame_bits(0, 8)
    half = faults.apply(drive, [faults.Flood(0x005, 0.5, 200.0, 5.0)])
    win = half[faults.traffic._window(half, 200.0, 5.0)]
    flood_bits = record.frame_bits(0, 8) * ((win["can_id"] == 5).sum() - (drive["can_id"] == 5).sum())
    assert 0.49 < flood_bits / 500_000 / 5.0 < 0.51


def test_a_flood_delays_the_cars_frames_bit_time_accurately():
    """Two frames by hand: one queued while a flood frame is on the wire waits
    for its last bit; behind a 100 % higher-priority flood it never gets on."""
    bit_us = 2.0  # 500 kbit/s
    car = faults.traffic._frames(np.array([1_000_100], np.uint64), 0x1A0, 0, 8, np.zeros((1, 8), np.uint8))
    flood = faults.Flood(0x000, 0.5, 1.0, 0.01)
    out, figures = flood.run(car, np.random.default_rng(0))
    frame_us = record.frame_bits(0, 8) * bit_us
    (ts,) = out["timestamp_us"][out["can_id"] == 0x1A0]
    assert ts == round(1_000_000 + frame_us)  # the flood frame that started at 1.0 s had the bus
    assert figures["delayed"] == 1 and figures["max_delay_us"] == pytest.approx(frame_us - 100, abs=1)
    starved, figures = faults.Flood(0x000, 1.0, 1.0, 0.01).run(car, np.random.default_rng(0))
    (ts,) = starved["timestamp_us"][starved["can_id"] == 0x1A0]
    last_flood = starved["timestamp_us"][starved["can_id"] == 0].max()
    assert ts == round(last_flood + frame_us)  # it never won while the flood ran: first after its last frame
    lower, _ = faults.Flood(0x7FF, 1.0, 1.0, 0.01).run(car, np.random.default_rng(0))
    (ts,) = lower["timestamp_us"][lower["can_id"] == 0x1A0]
    assert ts - 1_000_100 <= frame_us  # a lower-priority flood only makes it wait for the frame on the wire


def test_a_starved_message_is_superseded_not_queued(drive):
    flooded, figures = faults.Flood(0x000, 1.0, 200.0, 5.0).run(drive, np.random.default_rng(0))
    assert figures["superseded"] > 0
    # once the flood ends, at most one late frame per ID comes out before normal timing resumes
    burst = flooded[(flooded["timestamp_us"] >= 205_000_000) & (flooded["timestamp_us"] < 205_005_000)]
    ids, counts = np.unique(burst["can_id"], return_counts=True)
    assert counts.max() <= 2


def test_bus_off_stand_in_numbers_controllers_from_1():
    from keidrive.errors import KeidriveError
    from keidrive.fwconfig import schema_module

    result = faults.busoff_recovery(off_at_s=0.3, off_for_s=0.4, total_s=1.0)  # the config's own id opens
    assert result["frames"] > 0 and not result["errors"], result
    if schema_module().DEFAULTS["can_id"] == 0:
        pytest.skip("the firmware config still numbers controllers from 0: the stand-in takes 0 from it")
    with pytest.raises(KeidriveError, match="numbered from 1"):
        faults.busoff_recovery(off_at_s=0.3, off_for_s=0.4, total_s=1.0, can_id=0)


def test_timestamp_jump_and_bus_off(drive):
    out = faults.apply(drive, [faults.TimestampJump(100.0, 20.0)])
    at = np.searchsorted(drive["timestamp_us"], 100_000_000)
    assert out["timestamp_us"][at] - drive["timestamp_us"][at] == 20_000_000
    off = faults.apply(drive, [faults.BusOff(300.0, 2.0)])
    win = off[faults.traffic._window(off, 300.0, 2.0)]
    assert len(win) == 32 and ((win["flags"] & record.FLAG_ERROR) != 0).all()


def test_faults_are_hashable_and_deterministic(drive):
    fs = (faults.RandomFrames(1000, 0.0, 10.0, "kei_turbo_660"), faults.CorruptChecksum(0x130, share=0.3))
    assert hash(fs) == hash(tuple(fs))
    assert (faults.apply(drive, fs, 7) == faults.apply(drive, fs, 7)).all()


def test_tear_modes_are_never_loaded(tmp_path):
    import struct

    from keidrive.faults import PAYLOAD_LEN, crc16_ccitt, read_slot, tear_slot

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


def test_the_firmware_degrades_boundedly_under_a_flood(drive):
    """In the firmware: at 50 % load every frame of the car's arrives a few
    frame times late and the trip stays within 0.5 %; at 100 % the car's
    frames starve, the firmware says its signals are lost and integrates
    nothing of the window: the trip is the one with the window cut out."""
    from keidrive.drive.harness import firmware_config, run_records

    config = firmware_config("nbox-turbo", "jp-expressway")

    def trip(faulted):
        report = run_records(faulted.tobytes(), config, timeout=300)
        assert report.ok, report.failure()
        return report

    clean = trip(drive).trip
    half_records, half_figures = faults.Flood(0x000, 0.5, 200.0, 30.0).run(drive, np.random.default_rng(0))
    half = trip(half_records)
    full = trip(faults.apply(drive, [faults.Flood(0x000, 1.0, 200.0, 30.0)]))
    cut = trip(faults.apply(drive, [faults.Drop(None, 200.0, 30.0)])).trip
    print(f"\nflood 50 %: {half_figures['delayed']} car frames late, at most {half_figures['max_delay_us']:.0f} us, "
          f"distance {half.trip['distance_km']} km / fuel {half.trip['fuel_l']} L against {clean['distance_km']} / "
          f"{clean['fuel_l']}; 100 %: {full.trip['distance_km']} km, window cut out: {cut['distance_km']} km")
    # late by less than the shortest cycle time (10 ms): no frame superseded by its next one
    assert half_figures["superseded"] == 0 and half_figures["max_delay_us"] < 10_000
    assert half.trip["distance_km"] == pytest.approx(clean["distance_km"], rel=0.005)
    assert half.trip["fuel_l"] == pytest.approx(clean["fuel_l"], rel=0.005)
    assert not [e for e in half.signals if e["state"] == "lost"]
    assert any(e["state"] == "lost" for e in full.signals)
    assert full.trip["distance_km"] < clean["distance_km"] * 0.99
    assert full.trip["distance_km"] == pytest.approx(cut["distance_km"], rel=0.002)
    assert full.trip["fuel_l"] == pytest.approx(cut["fuel_l"], rel=0.002)
