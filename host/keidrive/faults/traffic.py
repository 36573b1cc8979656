"""Traffic faults: composable transforms over ``record.DTYPE`` arrays (see
``keidrive.faults`` for the list), vectorised with numpy, and the bus
arbitration model the flood runs on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import KeidriveError
from ..io import record
from .arbitration import NOMINAL_BITRATE, arbitrate

US = 1_000_000
BLOCK_RECORDS = 256  # keifw/app.py: records per read of the stream loop
VEHICLE_DBCS = ("kei_turbo_660", "kei_hybrid_660", "kei_ev")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _window(records: np.ndarray, t0: float, duration: float) -> np.ndarray:
    ts = records["timestamp_us"]
    lo = int(round(t0 * US))
    if duration == float("inf"):
        return ts >= lo
    return (ts >= lo) & (ts < lo + int(round(duration * US)))


def _select(records: np.ndarray, can_id, t0: float, duration: float, share: float, rng) -> np.ndarray:
    mask = _window(records, t0, duration) & ((records["flags"] & (record.FLAG_CONTROL | record.FLAG_ERROR)) == 0)
    if can_id is not None:
        mask &= records["can_id"] == can_id
    if share < 1.0:
        mask &= rng.random(len(records)) < share
    return mask


def _merge(records: np.ndarray, extra: np.ndarray) -> np.ndarray:
    if not len(extra):
        return records
    merged = np.concatenate([records, extra])
    return merged[np.argsort(merged["timestamp_us"], kind="stable")]


def _codec(can_id: int, dbc: str | None):
    """The simulator's codec of ``can_id`` (counter and checksum layout)."""
    from ..sim.frames import codecs_for

    for name in (dbc,) if dbc else VEHICLE_DBCS:
        for codec in codecs_for(Path(name).stem + ".dbc"):
            if codec.frame_id == can_id:
                return codec
    raise KeidriveError(f"no vehicle DBC has a message with id 0x{can_id:X}")


def _words(data: np.ndarray):
    data = np.ascontiguousarray(data)
    return data.view("<u8").reshape(-1).copy(), data.view(">u8").reshape(-1).copy()


def _field(le, be, sig):
    word = be if sig.big else le
    return (word >> np.uint64(sig.shift)) & np.uint64(sig.mask)


def _set_field(le, be, sig, value):
    word = be if sig.big else le
    word &= ~np.uint64(sig.mask << sig.shift)
    word |= (value.astype(np.uint64) & np.uint64(sig.mask)) << np.uint64(sig.shift)


def _unwords(le, be, big: bool) -> np.ndarray:
    word = be.astype(">u8") if big else le.astype("<u8")
    return word.view(np.uint8).reshape(-1, 8)


def _fix_checksum(codec, data: np.ndarray) -> np.ndarray:
    """``data`` with its CHECKSUM right again, by the message's own algorithm (as the simulator fills it)."""
    value = codec.algorithm.compute(data[:, :codec.length], codec.checksum_byte, codec.frame_id, codec.is_extended)
    le, be = _words(data)
    _set_field(le, be, codec.checksum, value)
    return _unwords(le, be, codec.checksum.big)


def _frames(timestamps_us, can_id, flags, dlc, data=None) -> np.ndarray:
    n = len(timestamps_us)
    out = np.zeros(n, dtype=record.DTYPE)
    out["timestamp_us"] = timestamps_us
    out["can_id"] = can_id
    out["flags"] = flags
    out["dlc"] = dlc
    if data is not None:
        out["data"] = data
    return out


def _rate_times(t0: float, duration: float, rate_hz: float, rng) -> np.ndarray:
    n = int(duration * rate_hz)
    return np.sort(rng.integers(int(t0 * US), int((t0 + duration) * US), n, dtype=np.uint64))


# ---------------------------------------------------------------------------
# traffic faults
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Drop:
    """No frame of ``can_id`` (None: of any ID) from ``t0`` for ``duration`` s."""

    can_id: int | None
    t0: float
    duration: float

    def __call__(self, records, rng):
        return records[~_select(records, self.can_id, self.t0, self.duration, 1.0, rng)]


@dataclass(frozen=True)
class CorruptCounter:
    """The COUNTER of ``can_id`` jumps (by 2..2^bits-1, never +1) on ``share``
    of its frames in the window; the CHECKSUM is recomputed so only the
    counter check can reject them."""

    can_id: int
    t0: float = 0.0
    duration: float = float("inf")
    share: float = 1.0
    dbc: str | None = None

    def __call__(self, records, rng):
        codec = _codec(self.can_id, self.dbc)
        if codec.counter is None:
            raise KeidriveError(f"message 0x{self.can_id:X} ({codec.name}) has no COUNTER")
        mask = _select(records, self.can_id, self.t0, self.duration, self.share, rng)
        if not mask.any():
            return records
        out = records.copy()
        data = out["data"][mask]
        le, be = _words(data)
        counter = _field(le, be, codec.counter)
        jump = rng.integers(2, codec.counter.mask + 1, len(counter), dtype=np.uint64) if codec.counter.mask > 1 \
            else np.zeros(len(counter), np.uint64)
        _set_field(le, be, codec.counter, counter + jump)
        data = _unwords(le, be, codec.counter.big)
        if codec.checksum is not None:
            data = _fix_checksum(codec, data)
        out["data"][mask] = data
        return out


@dataclass(frozen=True)
class CorruptChecksum:
    """The CHECKSUM byte of ``can_id`` is wrong (XOR a non-zero value) on
    ``share`` of its frames in the window."""

    can_id: int
    t0: float = 0.0
    duration: float = float("inf")
    share: float = 1.0
    dbc: str | None = None

    def __call__(self, records, rng):
        codec = _codec(self.can_id, self.dbc)
        if codec.checksum is None:
            raise KeidriveError(f"message 0x{self.can_id:X} ({codec.name}) has no CHECKSUM")
        mask = _select(records, self.can_id, self.t0, self.duration, self.share, rng)
        out = records.copy()
        data = out["data"][mask]
        le, be = _words(data)
        crc = _field(le, be, codec.checksum)
        _set_field(le, be, codec.checksum, crc ^ rng.integers(1, 256, len(crc), dtype=np.uint64))
        out["data"][mask] = _unwords(le, be, codec.checksum.big)
        return out


@dataclass(frozen=True)
class WrongDlc:
    """``can_id`` (None: every ID) arrives with DLC ``dlc`` (None: a random
    wrong one, 0-8) on ``share`` of its frames in the window."""

    can_id: int | None
    t0: float = 0.0
    duration: float = float("inf")
    dlc: int | None = None
    share: float = 1.0

    def __call__(self, records, rng):
        mask = _select(records, self.can_id, self.t0, self.duration, self.share, rng)
        out = records.copy()
        old = out["dlc"][mask].astype(np.int64)
        if self.dlc is None:
            new = (old + rng.integers(1, 9, len(old))) % 9  # never the old one
        else:
            new = np.full(len(old), self.dlc)
        out["dlc"][mask] = new
        return out


@dataclass(frozen=True)
class ErrorFrames:
    """Error frames (flag bit2, id 0, no data) at ``rate_hz`` in the window."""

    rate_hz: float
    t0: float = 0.0
    duration: float = 60.0

    def __call__(self, records, rng):
        ts = _rate_times(self.t0, self.duration, self.rate_hz, rng)
        return _merge(records, _frames(ts, 0, record.FLAG_ERROR, 0))


@dataclass(frozen=True)
class RemoteFrames:
    """Remote (RTR) frames at ``rate_hz`` in the window, on ``can_id`` or on
    IDs drawn from the traffic's own."""

    rate_hz: float
    t0: float = 0.0
    duration: float = 60.0
    can_id: int | None = None

    def __call__(self, records, rng):
        ts = _rate_times(self.t0, self.duration, self.rate_hz, rng)
        if self.can_id is not None:
            ids = np.full(len(ts), self.can_id, np.uint32)
            flags = np.full(len(ts), record.FLAG_REMOTE, np.uint8)
        else:
            pool = records[(records["flags"] & 0x86) == 0]
            pick = pool[rng.integers(0, max(len(pool), 1), len(ts))] if len(pool) else None
            ids = pick["can_id"] if pick is not None else np.zeros(len(ts), np.uint32)
            flags = (pick["flags"] & record.FLAG_EXTENDED if pick is not None else 0) | record.FLAG_REMOTE
        return _merge(records, _frames(ts, ids, flags, rng.integers(0, 9, len(ts))))


def random_frames(count: int, rng, t0: float = 0.0, rate_hz: float = 4000.0, known_ids=(),
                  error_share: float = 0.03, remote_share: float = 0.03, extended_share: float = 0.15,
                  known_share: float = 0.3) -> np.ndarray:
    """``count`` random frames from ``t0`` at ``rate_hz`` (4000/s: a saturated
    500 kbit/s bus): random 11- and 29-bit IDs (``known_share`` of them drawn
    from ``known_ids``, ``(id, extended, dlc)`` tuples, with the right DLC half
    the time, so the CHECKSUM / COUNTER / validity path sees them too), DLC
    0-8, random data, error and remote frames."""
    n = int(count)
    ts = np.uint64(int(t0 * US)) + (np.arange(n, dtype=np.uint64) * np.uint64(int(US / rate_hz)))
    out = _frames(ts, 0, 0, rng.integers(0, 9, n), rng.integers(0, 256, (n, 8), dtype=np.uint8))
    ext = rng.random(n) < extended_share
    out["can_id"] = np.where(ext, rng.integers(0, 1 << 29, n), rng.integers(0, 1 << 11, n))
    out["flags"] = np.where(ext, record.FLAG_EXTENDED, 0)
    if known_ids:
        known = np.array(known_ids, dtype=np.int64).reshape(-1, 3)
        hit = rng.random(n) < known_share
        pick = known[rng.integers(0, len(known), int(hit.sum()))]
        out["can_id"][hit] = pick[:, 0]
        out["flags"][hit] = np.where(pick[:, 1] != 0, record.FLAG_EXTENDED, 0)
        right = rng.random(len(pick)) < 0.5
        out["dlc"][hit] = np.where(right, pick[:, 2], out["dlc"][hit])
    kind = rng.random(n)
    error = kind < error_share
    remote = (kind >= error_share) & (kind < error_share + remote_share)
    out["flags"][error] = record.FLAG_ERROR
    out["can_id"][error] = 0
    out["dlc"][error] = 0
    out["flags"][remote] |= record.FLAG_REMOTE
    out["data"][error | remote] = 0
    return out


def known_ids(vehicle_module: str) -> tuple:
    """``(id, extended, dlc)`` of every message the firmware decodes for a
    vehicle module (``kei_turbo_660``...): its generated module's tables."""
    import ast

    from ..paths import firmware_dir

    source = (Path(firmware_dir()) / "keifw" / "vehicles" / f"{vehicle_module}.py").read_text()
    tables = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in ("MSG_IDS", "MSG_EXTENDED", "MSG_LEN"):
            tables[node.targets[0].id] = ast.literal_eval(node.value)
    return tuple(zip(tables["MSG_IDS"], (int(bool(e)) for e in tables["MSG_EXTENDED"]), tables["MSG_LEN"]))


@dataclass(frozen=True)
class RandomFrames:
    """``count`` random frames spread over the window (see ``random_frames``);
    ``vehicle``: the module whose IDs a share of them use."""

    count: int
    t0: float = 0.0
    duration: float = 60.0
    vehicle: str | None = None

    def __call__(self, records, rng):
        ids = known_ids(self.vehicle) if self.vehicle else ()
        extra = random_frames(self.count, rng, self.t0, self.count / self.duration, ids)
        return _merge(records, extra)


@dataclass(frozen=True)
class Flood:
    """A node floods the bus with ``can_id`` (by default 0x000, which wins
    every arbitration): from ``t0`` for ``duration`` s it queues a frame
    every frame time / ``load`` (1.0 = as fast as the wire at ``bitrate``
    carries them) and arbitrates with the car's own frames
    (``arbitration.arbitrate``): a car frame waits while the bus is busy or
    a higher-priority frame is queued, and is stamped when it wins. Below
    100 % the car's frames are late by a few frame times; at 100 % a
    higher-priority flood starves them until it stops."""

    can_id: int = 0x000
    load: float = 1.0
    t0: float = 0.0
    duration: float = 10.0
    bitrate: int = NOMINAL_BITRATE
    dlc: int = 8
    extended: bool = False

    def frame_us(self) -> float:
        flags = record.FLAG_EXTENDED if self.extended else 0
        return record.frame_bits(flags, self.dlc) * US / self.bitrate

    def __call__(self, records, rng):
        return self.run(records, rng)[0]

    def run(self, records, rng) -> tuple[np.ndarray, dict]:
        """The flooded records and what the car's frames suffered (``arbitrate``'s figures)."""
        lo = int(self.t0 * US)
        if self.load <= 0:
            return records, {"delayed": 0, "max_delay_us": 0.0, "superseded": 0}
        period = self.frame_us() / min(self.load, 1.0)
        ts = lo + np.arange(int(self.duration * US / period)) * period
        flags = record.FLAG_EXTENDED if self.extended else 0
        data = rng.integers(0, 256, (len(ts), 8), dtype=np.uint8)
        flood = _frames(np.round(ts).astype(np.uint64), self.can_id, flags, self.dlc, data)
        return arbitrate(records, flood, lo, self.bitrate)


@dataclass(frozen=True)
class TimestampJump:
    """Every record from ``t0`` on is ``jump_s`` later (earlier when
    negative, never before 0): a clock step in a log, a gap a device sees."""

    t0: float
    jump_s: float

    def __call__(self, records, rng):
        out = records.copy()
        at = out["timestamp_us"] >= int(self.t0 * US)
        ts = out["timestamp_us"][at].astype(np.int64) + int(round(self.jump_s * US))
        out["timestamp_us"][at] = np.maximum(ts, 0).astype(np.uint64)
        return out  # not re-sorted: a jump back is a jump back


@dataclass(frozen=True)
class BusOff:
    """What a device sees while its controller is bus-off: a burst of error
    frames (the transmit error counter passing 255), then nothing at all for
    ``duration`` s. The controller-level restart and back-off are exercised
    by ``busoff_recovery``."""

    t0: float
    duration: float = 1.0
    error_frames: int = 32

    def __call__(self, records, rng):
        kept = records[~_select(records, None, self.t0, self.duration, 1.0, rng)]
        ts = np.uint64(int(self.t0 * US)) + np.arange(self.error_frames, dtype=np.uint64) * np.uint64(100)
        return _merge(kept, _frames(ts, 0, record.FLAG_ERROR, 0))


def apply(records: np.ndarray, faults, seed: int = 0) -> np.ndarray:
    """Run ``faults`` over ``records`` in order (each gets the same seeded
    random generator in turn)."""
    rng = np.random.default_rng(seed)
    out = records
    for fault in faults or ():
        out = fault(out, rng)
    return out

