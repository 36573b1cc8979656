"""The CAN bus as the flood meets it: frames on the wire one at a time, and
when the bus goes idle, the lowest arbitration key among the frames already
queued wins (non-preemptive, bit-time accurate at the bitrate, frame lengths
with worst-case stuffing from ``record.frame_bits``).

A node keeps the newest frame of each ID it has not sent yet (one transmit
mailbox per message, as ECUs do for periodic frames): a frame still waiting
when its next instance is queued is superseded, so a starved message arrives
fresh, late and once, never as a backlog of stale copies.
"""

from __future__ import annotations

import heapq

import numpy as np

from ..io import record

US = 1_000_000
NOMINAL_BITRATE = 500_000


def frame_bits(flags, dlc) -> np.ndarray:
    """``record.frame_bits`` over arrays."""
    flags = np.asarray(flags)
    n = np.where(flags & record.FLAG_REMOTE, 0, np.minimum(np.asarray(dlc), 8)).astype(np.int64)
    stuffable = np.where(flags & record.FLAG_EXTENDED, 54, 34) + 8 * n
    return stuffable + (stuffable - 1) // 4 + 13


def bus_occupancy(records: np.ndarray, bitrate: int = NOMINAL_BITRATE):
    """(start_us, end_us) on the wire of each record, serialised in order:
    a frame starts at its timestamp or when the previous one has left."""
    ts = records["timestamp_us"].astype(np.float64)
    dur = frame_bits(records["flags"], records["dlc"]) * (US / bitrate)
    cum = np.cumsum(dur)
    # end_i = max_j<=i (ts_j + sum_{k=j..i} dur_k) = cum_i + max_j<=i (ts_j - cum_{j-1})
    prev = np.concatenate([[0.0], cum[:-1]])
    end = cum + np.maximum.accumulate(ts - prev)
    return end - dur, end


def arbitrate(records: np.ndarray, extra: np.ndarray, start_us: int, bitrate: int) -> tuple[np.ndarray, dict]:
    """``records`` and ``extra`` (both queued at their timestamps) through one
    bus from ``start_us``: each frame restamped to when it won the bus, the
    superseded left out, all sorted by time. Records before ``start_us``, and
    from where the bus has gone idle after the last ``extra`` frame, are as
    they were. Also returns what happened: frames delayed, the largest delay
    (us), frames superseded."""
    frames = (records["flags"] & (record.FLAG_CONTROL | record.FLAG_ERROR)) == 0
    own = np.flatnonzero(frames & (records["timestamp_us"] >= start_us))
    merged = np.concatenate([records[own], extra])
    n_own = len(own)
    order = np.argsort(merged["timestamp_us"], kind="stable")
    queued = merged["timestamp_us"].astype(np.int64)
    duration = frame_bits(merged["flags"], merged["dlc"]) * (US / bitrate)
    keys = [record.arbitration_key(int(i), int(f)) for i, f in zip(merged["can_id"], merged["flags"])]
    last_extra = int(queued[n_own:].max()) if len(extra) else start_us
    won = queued.astype(np.float64)
    superseded = np.zeros(len(merged), bool)
    waiting = {}  # arbitration key -> index of the frame of that ID not yet sent
    pending: list = []
    bus_free = float(start_us)
    k = 0
    while k < len(order) or pending:
        if not pending:
            if k >= len(order):
                break
            if bus_free <= queued[order[k]] and queued[order[k]] > last_extra:
                break  # idle bus after the flood: the rest keeps its timing
            bus_free = max(bus_free, float(queued[order[k]]))
        while k < len(order) and queued[order[k]] <= bus_free:
            i = int(order[k])
            k += 1
            older = waiting.get(keys[i])
            if older is not None:
                superseded[older] = True
            waiting[keys[i]] = i
            heapq.heappush(pending, (keys[i], int(queued[i]), i))
        key, _, i = heapq.heappop(pending)
        if superseded[i]:
            continue
        del waiting[key]
        won[i] = bus_free
        bus_free += duration[i]
    merged["timestamp_us"] = np.round(won).astype(np.uint64)
    delay = won[:n_own][~superseded[:n_own]] - queued[:n_own][~superseded[:n_own]]
    kept = np.delete(records, own)
    out = np.concatenate([kept, merged[~superseded]])
    out = out[np.argsort(out["timestamp_us"], kind="stable")]
    return out, {
        "delayed": int((delay > 0).sum()),
        "max_delay_us": float(delay.max()) if len(delay) else 0.0,
        "superseded": int(superseded[:n_own].sum()),
    }
