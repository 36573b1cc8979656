"""Signal faults: a sensor that lies or dies, a node that forges frames.

Transforms over ``record.DTYPE`` arrays like the traffic faults, each
working on one message's decoded signals through the simulator's codec
(``sim.frames.MessageCodec``): values are read and written in physical
units with the DBC's scaling, and the CHECKSUM is recomputed, so what the
firmware sees is a well-formed frame whose content is wrong.

=====================  ==================================================
``ScaleSignals``       signals times a factor: 0 a dead sensor (wheels
                       at 0 on a moving car), 1/3.6 a unit mismatch
``FreezeSignals``      signals stuck at their value at ``t0``
``Forge``              a foreign node's frames at a rate, each a copy of
                       the car's last frame with chosen values and a
                       repeated COUNTER, placed just before the
                       firmware's 10 Hz ticks
``SameTimeSpike``      single frames with a chosen value, the next
                       COUNTER and the timestamp of the car's frame
                       before them (a 0 us step)
=====================  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io import record
from .traffic import US, _codec, _field, _fix_checksum, _merge, _select, _set_field, _unwords, _words

TICK_US = 100_000  # the firmware's 10 Hz tick


def _signal(codec, name: str):
    for sig in codec.signals:
        if sig.name == name:
            return sig
    raise ValueError(f"message {codec.name} has no signal {name}")


def _physical(sig, raw: np.ndarray) -> np.ndarray:
    raw = raw.astype(np.int64)
    if sig.signed:
        raw = np.where(raw >= 1 << (sig.length - 1), raw - (1 << sig.length), raw)
    return raw * sig.scale + sig.offset


def _rewrite(codec, data: np.ndarray, values: dict) -> np.ndarray:
    """``data`` (N x 8) with the signals in ``values`` (name -> physical
    values, one per frame) re-encoded and the CHECKSUM recomputed."""
    le, be = _words(data)
    sigs = [_signal(codec, name) for name in values]
    if len({sig.big for sig in sigs}) != 1:
        raise ValueError(f"{codec.name}: rewrite signals of one byte order at a time")
    for sig, phys in zip(sigs, values.values()):
        _set_field(le, be, sig, codec.raw(sig, np.broadcast_to(phys, (len(data),))))
    out = _unwords(le, be, sigs[0].big)
    if codec.checksum is not None:
        out = _fix_checksum(codec, out)
    return out


def _read(codec, data: np.ndarray, name: str) -> np.ndarray:
    le, be = _words(data)
    sig = _signal(codec, name)
    return _physical(sig, _field(le, be, sig))


@dataclass(frozen=True)
class ScaleSignals:
    """``signals`` of ``can_id`` times ``factor`` in the window (0: a dead
    sensor; 1/3.6: m/s where the DBC says km/h)."""

    can_id: int
    signals: tuple
    factor: float
    t0: float = 0.0
    duration: float = float("inf")
    dbc: str | None = None

    def __call__(self, records, rng):
        codec = _codec(self.can_id, self.dbc)
        mask = _select(records, self.can_id, self.t0, self.duration, 1.0, rng)
        out = records.copy()
        data = out["data"][mask]
        out["data"][mask] = _rewrite(codec, data, {n: _read(codec, data, n) * self.factor for n in self.signals})
        return out


@dataclass(frozen=True)
class FreezeSignals:
    """``signals`` of ``can_id`` stuck at their value in the last frame
    before ``t0`` for ``duration`` s (COUNTER and CHECKSUM still right: the
    sender itself is stuck)."""

    can_id: int
    signals: tuple
    t0: float
    duration: float = float("inf")
    dbc: str | None = None

    def __call__(self, records, rng):
        codec = _codec(self.can_id, self.dbc)
        mask = _select(records, self.can_id, self.t0, self.duration, 1.0, rng)
        before = np.nonzero((records["can_id"] == self.can_id) & ~mask
                            & (records["timestamp_us"] < int(self.t0 * US)))[0]
        if not mask.any() or not len(before):
            return records
        held = records["data"][before[-1]][None, :]
        out = records.copy()
        out["data"][mask] = _rewrite(codec, out["data"][mask], {n: _read(codec, held, n)[0] for n in self.signals})
        return out


def _previous(records, can_id: int, at_us: np.ndarray) -> np.ndarray:
    """Index of the last frame of ``can_id`` at or before each time (-1: none)."""
    own = np.nonzero((records["can_id"] == can_id) & ((records["flags"] & 0x86) == 0))[0]
    k = np.searchsorted(records["timestamp_us"][own], at_us, side="right") - 1
    return np.where(k >= 0, own[np.maximum(k, 0)], -1)


@dataclass(frozen=True)
class Forge:
    """A foreign node sends ``can_id`` at ``rate_hz`` in the window: each
    frame a copy of the car's last frame of that id with ``values``
    ((signal, physical value) pairs) and the same COUNTER (repeated), the
    CHECKSUM recomputed. The frames go ``lead_us`` before the firmware's
    10 Hz ticks (its ticks fall every 100 ms from the first record), so the
    tick after each reads whatever the forged frame left behind."""

    can_id: int
    values: tuple
    rate_hz: float = 10.0
    t0: float = 0.0
    duration: float = float("inf")
    lead_us: int = 100
    dbc: str | None = None

    def __call__(self, records, rng):
        codec = _codec(self.can_id, self.dbc)
        first = int(records["timestamp_us"][(records["flags"] & record.FLAG_CONTROL) == 0].min())
        last = int(records["timestamp_us"].max())
        step = max(TICK_US, round(US / self.rate_hz / TICK_US) * TICK_US)
        ts = np.arange(first + step - self.lead_us, last, step, dtype=np.int64)
        ts = ts[(ts >= self.t0 * US) & (ts < (self.t0 + self.duration) * US)]
        src = _previous(records, self.can_id, ts)
        ts, src = ts[src >= 0], src[src >= 0]
        forged = records[src].copy()
        forged["timestamp_us"] = ts.astype(np.uint64)
        forged["data"] = _rewrite(codec, forged["data"], dict(self.values))  # the COUNTER stays: repeated
        return _merge(records, forged)


@dataclass(frozen=True)
class SameTimeSpike:
    """``count`` frames of ``can_id`` spread over the window, each with
    ``values`` ((signal, physical value) pairs), the COUNTER after the car's
    frame it follows (so the counter check passes it) and that frame's
    timestamp: a step of 0 us."""

    can_id: int
    values: tuple
    count: int
    t0: float = 0.0
    duration: float = 60.0
    dbc: str | None = None

    def __call__(self, records, rng):
        codec = _codec(self.can_id, self.dbc)
        at = np.linspace(self.t0 * US, (self.t0 + self.duration) * US, self.count, endpoint=False).astype(np.int64)
        src = _previous(records, self.can_id, at)
        src = np.unique(src[src >= 0])
        spikes = records[src].copy()
        data = _rewrite(codec, spikes["data"], dict(self.values))
        if codec.counter is not None:
            le, be = _words(data)
            _set_field(le, be, codec.counter, _field(le, be, codec.counter) + np.uint64(1))
            data = _unwords(le, be, codec.counter.big)
            if codec.checksum is not None:
                data = _fix_checksum(codec, data)
        spikes["data"] = data
        return _merge(records, spikes)
