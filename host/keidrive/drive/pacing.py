"""Real-time pace for replaying timestamped frames, and its timing error.

python-can's ``MessageSync`` sleeps once per message relative to the last one,
so at high message rates every sleep's overshoot accumulates and a replay
falls far behind its log (python-can issue #1372). Here every frame has an
absolute deadline from the start of the replay: frames already due go out
back to back without sleeping, the loop sleeps only while the next deadline
is further away than the sleep granularity and spins the last stretch, so
overshoot never accumulates. Lateness of every frame is recorded.
"""

import time

import numpy as np

# Sleeping shorter than this overshoots by more than it saves: spin instead.
SPIN_S = 0.0015


class Pacer:
    """Waits until each frame's due time; ``speed`` 2 plays twice as fast,
    ``None`` (or 0) as fast as possible."""

    def __init__(self, speed: float | None = 1.0, clock=time.perf_counter, sleep=time.sleep):
        self.speed = speed or None
        self._clock = clock
        self._sleep = sleep
        self._start = None
        self._first_timestamp = 0.0
        self._lateness: list[float] = []

    def wait(self, timestamp: float) -> None:
        """Block until the frame stamped ``timestamp`` (seconds) is due."""
        if self.speed is None:
            return
        now = self._clock()
        if self._start is None:
            self._start, self._first_timestamp = now, timestamp
        due = self._start + (timestamp - self._first_timestamp) / self.speed
        if due - now > SPIN_S:
            self._sleep(due - now - SPIN_S)
        while self._clock() < due:
            pass
        self._lateness.append(self._clock() - due)

    def timing_error(self) -> dict:
        """How late frames left against their deadlines, in milliseconds."""
        if not self._lateness:
            return {"frames": 0, "mean_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        late = np.asarray(self._lateness) * 1000
        return {
            "frames": int(late.size),
            "mean_ms": round(float(late.mean()), 3),
            "p99_ms": round(float(np.percentile(late, 99)), 3),
            "max_ms": round(float(late.max()), 3),
        }


def describe(timing: dict) -> str:
    """One line of a timing error (``Pacer.timing_error``) for a person."""
    return f"lateness mean {timing['mean_ms']} ms, p99 {timing['p99_ms']} ms, max {timing['max_ms']} ms"
