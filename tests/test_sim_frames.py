"""Frames: vectorised encoder vs cantools, counters, checksums, timing."""

import cantools
import numpy as np
import pytest

from keidrive import sim
from keidrive.paths import dbc_dir
from keidrive.dbccompiler.checksum import ALGORITHMS
from keidrive.sim.frames import MessageCodec

crc8_sae_j1850 = ALGORITHMS["CRC8_SAEJ1850"].compute

DBCS = ["kei_turbo_660.dbc", "kei_hybrid_660.dbc", "kei_ev.dbc"]


def test_crc8_sae_j1850_check_value():
    assert crc8_sae_j1850(b"123456789") == 0x4B  # catalogue check value of CRC-8/SAE-J1850


@pytest.mark.parametrize("dbc", DBCS)
def test_encoder_matches_cantools_decode(dbc):
    db = cantools.database.load_file(str(dbc_dir() / dbc))
    rng = np.random.default_rng(1)
    for msg in db.messages:
        codec = MessageCodec(msg)
        n = 64
        values = {}
        for s in msg.signals:
            lo, hi = s.minimum, s.maximum
            values[s.name] = rng.uniform(lo, hi, n)
        if codec.mux is not None:
            values[codec.mux.name] = rng.integers(0, 3, n).astype(float)
        data = codec.encode(values, np.arange(n))
        for i in range(n):
            dec = msg.decode(bytes(data[i]), decode_choices=False, scaling=True)
            for name, got in dec.items():
                if name in ("COUNTER", "CHECKSUM"):
                    continue
                s = msg.get_signal_by_name(name)
                want = np.clip(np.rint((values[name][i] - s.offset) / s.scale), *_raw_range(s, codec)) * s.scale + s.offset
                assert got == pytest.approx(want, abs=1e-9), (msg.name, name)
            if codec.counter is not None:
                assert dec["COUNTER"] == i % (codec.counter.mask + 1)
            if codec.checksum is not None:
                assert dec["CHECKSUM"] == crc8_sae_j1850(bytes(data[i][:7]))


def _raw_range(s, codec):
    sig = next(x for x in codec.signals if x.name == s.name)
    return sig.lo, sig.hi


@pytest.mark.parametrize("vehicle", ["alto-hybrid", "sakura-ev"])
def test_simulated_frames_decode_with_valid_counters(vehicle):
    res = sim.simulate(vehicle, "hwfet")
    f = res.frames
    assert np.all(np.diff(f["timestamp"]) >= 0)
    db = cantools.database.load_file(str(dbc_dir() / res.vehicle.dbc))
    for msg in db.messages:
        sel = np.flatnonzero(f["arbitration_id"] == msg.frame_id)
        assert len(sel) > 0, msg.name
        period = np.diff(f["timestamp"][sel])
        # the cycle time, give or take the transmit task's jitter
        assert np.allclose(period, msg.cycle_time / 1000, atol=sim.core.JITTER_S + 1e-9), msg.name
        assert np.mean(period) == pytest.approx(msg.cycle_time / 1000, rel=1e-4), msg.name
        assert f["timestamp"][sel[0]] == pytest.approx(msg.cycle_time / 1000, abs=0.003 + sim.core.JITTER_S)
        assert bool(f["is_extended"][sel[0]]) == msg.is_extended_frame
        codec = MessageCodec(msg)
        for k, i in enumerate(sel[:: max(1, len(sel) // 200)]):
            dec = msg.decode(bytes(f["data"][i]), decode_choices=False)
            if codec.checksum is not None:
                assert dec["CHECKSUM"] == crc8_sae_j1850(bytes(f["data"][i][:7]))
        if codec.counter is not None:
            counters = [msg.decode(bytes(f["data"][i]))["COUNTER"] for i in sel[:40]]
            assert counters == [j % (codec.counter.mask + 1) for j in range(40)]


def test_ice_signals_realistic():
    res = sim.simulate("nbox-turbo", "wltc-jp")
    db = cantools.database.load_file(str(dbc_dir() / "kei_turbo_660.dbc"))
    f = res.frames

    def series(name, sig):
        msg = db.get_message_by_name(name)
        sel = np.flatnonzero(f["arbitration_id"] == msg.frame_id)
        return f["timestamp"][sel], np.array([msg.decode(bytes(f["data"][i]), decode_choices=False)[sig] for i in sel])

    _, cool = series("ENGINE_3", "CoolantTemp")
    assert cool[0] <= 27 and cool.max() >= 80  # cold start from 25 degC, warms up
    _, page = series("ENGINE_DIAG", "DiagPage")
    assert list(page[:6]) == [0, 1, 2, 0, 1, 2]
    _, odo = series("ODOMETER", "Odometer")
    assert np.all(np.diff(odo) >= 0) and odo[-1] - odo[0] == pytest.approx(res.truth["distance_km"], abs=0.11)
    _, level = series("DASH_DISPLAY", "FuelLevel")
    assert level[-1] < level[0]
    _, boost = series("ENGINE_2", "BoostPressure")
    assert boost.max() > 10 and boost.min() < -30  # boost under load, vacuum at idle
    _, sel = series("CVT_STATUS", "GearSelector")
    assert set(sel) == {3}
    _, v = series("VEHICLE_SPEED", "VehicleSpeed")
    for w in ("WheelSpeedFL", "WheelSpeedFR", "WheelSpeedRL", "WheelSpeedRR"):
        _, ws = series("WHEEL_SPEEDS", w)
        assert np.max(np.abs(ws - v)) < 1.0
    _, brake = series("VEHICLE_SPEED", "BrakeSwitch")
    assert 0.05 < brake.mean() < 0.6


def test_a_full_wltc_jp_drive_is_simulated_whole():
    # how fast: keidrive bench --only simulator
    res = sim.simulate("alto-hybrid", "wltc-jp")
    assert res.truth["frames"] > 500_000
