"""Replay pace holds at high message rates, where python-can's MessageSync
falls behind, and its timing error is reported."""

import time

import pytest

from keidrive.drive.pacing import Pacer


def test_high_rate_replay_keeps_pace_and_reports_its_error():
    rate = 5000  # frames/s: ten times a kei powertrain bus
    duration = 1.0
    pacer = Pacer(speed=1.0)
    started = time.perf_counter()
    for i in range(int(rate * duration)):
        pacer.wait(100.0 + i / rate)
    elapsed = time.perf_counter() - started
    error = pacer.timing_error()
    print(f"\n{rate} frames/s for {duration} s took {elapsed:.3f} s; lateness {error}")
    assert error["frames"] == rate * duration
    # The per-message-sleep failure mode runs several times slower than the log;
    # absolute deadlines keep the total on the log's own duration.
    assert elapsed < duration * 1.5


def test_speed_multiplies_and_none_is_as_fast_as_possible():
    clock_now = [0.0]
    slept = []

    def clock():
        clock_now[0] += 1e-6  # reading a clock takes time: the spin ends
        return clock_now[0]

    def sleep(seconds):
        slept.append(seconds)
        clock_now[0] += seconds

    pacer = Pacer(speed=4.0, clock=clock, sleep=sleep)
    pacer.wait(10.0)  # the first frame is due at once
    pacer.wait(14.0)  # 4 s of log at 4x: due 1 s later
    assert sum(slept) == pytest.approx(1.0 - 0.0015, abs=1e-4)
    assert clock_now[0] == pytest.approx(1.0, abs=1e-4)

    fast = Pacer(speed=None, clock=clock, sleep=sleep)
    before = len(slept)
    for t in range(1000):
        fast.wait(float(t))
    assert len(slept) == before and fast.timing_error()["frames"] == 0
