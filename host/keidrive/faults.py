"""Fault injection: what a car's bus and power supply do to a device.

Two levels:

* **Traffic faults** — composable transforms over a ``record.DTYPE`` array
  (the 24-byte stream records), vectorised with numpy. Each is a small frozen
  dataclass (hashable, printable: usable as a pytest id or a cache key);
  ``apply(records, faults, seed)`` runs them in order and returns the records
  sorted by timestamp (stable: frames with equal timestamps keep their order).

  =====================  ==================================================
  ``Drop``               no frame of an ID (or of any ID) for a while
  ``CorruptCounter``     COUNTER jumps (the CHECKSUM is recomputed, so the
                         counter check is what must catch it)
  ``CorruptChecksum``    CHECKSUM byte wrong
  ``WrongDlc``           DLC other than the DBC's
  ``ErrorFrames``        error frames at a rate
  ``RemoteFrames``       remote (RTR) frames at a rate, on the car's IDs
  ``RandomFrames``       random IDs, DLC 0-8, random data, error and remote
  ``Flood``              a higher-priority ID fills the bus to ``load``
  ``TimestampJump``      the clock jumps forward (or back) at a moment
  ``BusOff``             error frames, then silence: the stream a device
                         sees while its controller is bus-off
  =====================  ==================================================

  Times (``t0``, ``duration``) are seconds of record time (the simulator's
  drives start at 0).

* **Process faults** — ``run_with_power_cuts`` kills the firmware process
  (SIGKILL: a power cut) at chosen record positions, optionally tears the slot
  file it was writing, restarts it on the rest of the drive with the same data
  directory and checks every restore against an independent reader of the
  trip store (``read_trip_store``). ``busoff_recovery`` runs the firmware's
  board loop (``app.run_port`` with ``MachineCANPort``) in MicroPython against
  a ``machine.CAN`` stand-in that goes bus-off, and reports its restarts.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import subprocess
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import record
from .errors import KeidriveError

US = 1_000_000
BLOCK_RECORDS = 256  # keifw/app.py: records per read of the stream loop
NOMINAL_BITRATE = 500_000
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
    from .sim.frames import codecs_for

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


def _fix_crc(codec, data: np.ndarray) -> np.ndarray:
    from .sim.frames import CRC_TABLE

    crc = np.full(len(data), 0xFF, np.uint8)
    for i in codec.crc_bytes:
        crc = CRC_TABLE[crc ^ data[:, i]]
    crc ^= 0xFF
    le, be = _words(data)
    _set_field(le, be, codec.checksum, crc)
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
            data = _fix_crc(codec, data)
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

    from .paths import firmware_dir

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


def bus_occupancy(records: np.ndarray, bitrate: int = NOMINAL_BITRATE):
    """(start_us, end_us) on the wire of each record, serialised in order:
    a frame starts at its timestamp or when the previous one has left."""
    ts = records["timestamp_us"].astype(np.float64)
    bits = _frame_bits(records["flags"], records["dlc"])
    dur = bits * (US / bitrate)
    cum = np.cumsum(dur)
    # end_i = max_j<=i (ts_j + sum_{k=j..i} dur_k) = cum_i + max_j<=i (ts_j - cum_{j-1})
    prev = np.concatenate([[0.0], cum[:-1]])
    end = cum + np.maximum.accumulate(ts - prev)
    return end - dur, end


def _frame_bits(flags, dlc) -> np.ndarray:
    flags = np.asarray(flags)
    n = np.where(flags & record.FLAG_REMOTE, 0, np.minimum(np.asarray(dlc), 8)).astype(np.int64)
    stuffable = np.where(flags & record.FLAG_EXTENDED, 54, 34) + 8 * n
    return stuffable + (stuffable - 1) // 4 + 13


@dataclass(frozen=True)
class Flood:
    """A higher-priority ID floods the bus: from ``t0`` for ``duration`` s its
    frames take every bit the car's own traffic leaves free, up to ``load``
    (1.0 = 100 % of ``bitrate``; frame lengths from ``record.frame_bits``,
    worst-case stuffing). The car's frames keep their timestamps."""

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
        lo, hi = int(self.t0 * US), int((self.t0 + self.duration) * US)
        inside = records[_window(records, self.t0, self.duration) & ((records["flags"] & record.FLAG_CONTROL) == 0)]
        start, end = bus_occupancy(inside, self.bitrate)
        # free stretches: [lo, first start), [end_i, start_i+1), [last end, hi)
        free_from = np.concatenate([[lo], end])
        free_to = np.concatenate([start, [hi]])
        free_from = np.clip(free_from, lo, hi)
        free_to = np.clip(free_to, lo, hi)
        frame = self.frame_us()
        # the flood's own share of the whole window is load minus what the car uses
        budget = max(self.load * (hi - lo) - float(np.sum(end - start)), 0.0)
        counts = np.floor(np.maximum(free_to - free_from, 0) / frame).astype(np.int64)
        total = int(counts.sum())
        if total == 0 or budget <= 0:
            return records
        keep = min(total, int(budget / frame))
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        ts = np.repeat(free_from, counts) + offsets * frame
        if keep < total:
            ts = ts[np.linspace(0, total - 1, keep).astype(np.int64)]
        flags = record.FLAG_EXTENDED if self.extended else 0
        data = rng.integers(0, 256, (len(ts), 8), dtype=np.uint8)
        return _merge(records, _frames(np.round(ts).astype(np.uint64), self.can_id, flags, self.dlc, data))


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


# ---------------------------------------------------------------------------
# the trip store, read independently of the firmware
# ---------------------------------------------------------------------------

SLOTS = ("trip_a.bin", "trip_b.bin")
MAGIC = b"KDT1"
# keifw/economy.py accumulator layout (whole, remainder pairs)
ACC_DIST, ACC_FUEL, ACC_TICKS, N_ACC = 0, 2, 14, 20
MAX_LOG = 64
PAYLOAD_LEN = 4 * N_ACC + 8 + 16 * MAX_LOG


def crc16_ccitt(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def read_slot(path) -> dict | None:
    """A slot file as the format says (docs/firmware.md), or None when it
    is missing or not a complete save (torn, wrong length, bad CRC)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    size = 10 + PAYLOAD_LEN + 2
    if len(data) != size or data[:4] != MAGIC:
        return None
    seq, length = struct.unpack_from("<IH", data, 4)
    if length != PAYLOAD_LEN or crc16_ccitt(data[:-2]) != struct.unpack_from("<H", data, size - 2)[0]:
        return None
    acc = struct.unpack_from("<%di" % N_ACC, data, 10)
    log_n, log_total = struct.unpack_from("<ii", data, 10 + 4 * N_ACC)
    return {"seq": seq, "ticks": acc[ACC_TICKS], "distance_m": acc[ACC_DIST], "fuel_ml": acc[ACC_FUEL],
            "log_n": log_n, "log_total": log_total}


def read_trip_store(data_dir) -> dict | None:
    """The save a correct firmware must restore: the valid slot with the
    higher sequence number (None if neither is valid)."""
    best = None
    for k, name in enumerate(SLOTS):
        slot = read_slot(Path(data_dir) / name)
        if slot is not None and (best is None or slot["seq"] > best["seq"]):
            best = dict(slot, slot=k)
    return best


TEAR_MODES = ("truncate", "zero_tail", "old_tail", "garbage_tail", "empty")


def tear_slot(path, offset: int, mode: str, rng, old: bytes | None = None) -> None:
    """Make ``path`` look like a write cut at byte ``offset``: ``truncate``
    (the file ends there), ``zero_tail`` / ``garbage_tail`` (the rest never
    written: zeros / flash garbage), ``old_tail`` (an in-place rewrite cut:
    the rest is the previous contents), ``empty`` (cut right after open)."""
    path = Path(path)
    new = path.read_bytes()
    offset = max(0, min(offset, len(new)))
    if mode == "truncate":
        torn = new[:offset]
    elif mode == "zero_tail":
        torn = new[:offset] + bytes(len(new) - offset)
    elif mode == "garbage_tail":
        torn = new[:offset] + rng.integers(0, 256, len(new) - offset, dtype=np.uint8).tobytes()
    elif mode == "old_tail":
        rest = (old or b"")[offset:len(new)]
        torn = new[:offset] + rest
    elif mode == "empty":
        torn = b""
    else:
        raise ValueError(f"unknown tear mode {mode!r}")
    path.write_bytes(torn)


# ---------------------------------------------------------------------------
# power cuts
# ---------------------------------------------------------------------------


@dataclass
class Cut:
    """One power cut: where, how, and what the next boot restored."""

    index: int  # records delivered before the cut
    mode: str  # "idle" (between frames), "save" (around a save), "tear" (a save cut mid-write)
    delivered_s: float  # trip time the device had been given
    restored_s: float  # trip time of the save the next boot restored (0: none)
    lost_s: float
    corrupt: bool
    note: str = ""
    torn_by_kill: bool = False  # the SIGKILL itself landed inside a slot write


@dataclass
class PowerCutReport:
    cuts: list = field(default_factory=list)
    final: object = None  # FirmwareReport of the last segment
    save_interval_s: int = 0
    exceptions: int = 0

    @property
    def corrupt_loads(self) -> int:
        return sum(cut.corrupt for cut in self.cuts)

    @property
    def max_lost_s(self) -> float:
        return max((cut.lost_s for cut in self.cuts), default=0.0)


def _pipe_pending(fd: int) -> int:
    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return struct.unpack("i", buf)[0]


def _blocked(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("S", "D")
    except OSError:
        return True


def _drain(process, idle: bool, timeout: float = 30.0) -> None:
    """Wait until the firmware has read everything written to its stdin
    (and, for ``idle``, is waiting for more: nothing in flight)."""
    fd = process.stdin.fileno()
    deadline = time.monotonic() + timeout
    settled = 0
    while time.monotonic() < deadline and process.poll() is None:
        if _pipe_pending(fd) == 0 and (not idle or _blocked(process.pid)):
            settled += 1
            if settled >= (3 if idle else 1):
                return
        else:
            settled = 0
        time.sleep(0.0005)


def save_points(records: np.ndarray, start: int, end: int, save_interval_s: int) -> np.ndarray:
    """Indices i in [start, end) whose record makes a firmware started at
    ``start`` run a save tick (its first record with t >= the tick time)."""
    ts = records["timestamp_us"][start:end].astype(np.int64)
    if len(ts) < 2:
        return np.zeros(0, np.int64)
    period = save_interval_s * US
    due = ts[0] + period * np.arange(1, (ts[-1] - ts[0]) // period + 1)
    return start + np.searchsorted(ts, due, side="left")


def _ticks(records: np.ndarray, start: int, end: int) -> int:
    """10 Hz ticks a firmware started at record ``start`` runs by record ``end`` - 1."""
    if end - start < 1:
        return 0
    ts = records["timestamp_us"]
    return int((int(ts[end - 1]) - int(ts[start])) // 100_000)


def run_with_power_cuts(records: np.ndarray, config: dict, cuts, *, workdir=None, runtime: str = "micropython",
                        seed: int = 0, timeout: float = 120.0) -> PowerCutReport:
    """Drive ``records`` through the firmware (stdin, virtual clock), cutting
    its power at each ``(index, mode)`` of ``cuts`` (sorted by index):

    * ``idle``: the records before ``index`` delivered and processed, then SIGKILL;
    * ``save``: ``index`` right after a record that runs a save tick; SIGKILL a
      random 0-3 ms after the firmware has read it (before, inside or after the write);
    * ``tear``: as ``idle`` at a save point, then the slot just written is torn
      at a random byte (``TEAR_MODES``): a cut in the middle of the write.

    After each cut the firmware boots again on the rest of the drive with the
    same data directory. Each boot's restore is checked against
    ``read_trip_store`` (the first status line must carry the restored trip
    time, and the restore must be announced); the loss is the trip time the
    device had been given minus the time restored. Records must come from one
    drive without gaps over 60 s (the tick count is computed from timestamps).
    """
    from .harness import FirmwareProcess

    rng = np.random.default_rng(seed)
    save_s = int(config.get("save_interval_s", 60))
    config = dict(config, status_interval_s=1)
    owned = None
    if workdir is None:
        owned = tempfile.TemporaryDirectory(prefix="keidrive-cut-")
        workdir = owned.name
    data_dir = Path(workdir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    report = PowerCutReport(save_interval_s=save_s)
    bounds = [int(i) for i, _ in cuts] + [len(records)]
    modes = [m for _, m in cuts]
    start = 0
    try:
        for k, end in enumerate(bounds):
            expected = read_trip_store(data_dir)
            restored_ticks = expected["ticks"] if expected else 0
            before = {name: (data_dir / name).read_bytes() for name in SLOTS if (data_dir / name).exists()}
            firmware = FirmwareProcess(config, runtime=runtime, workdir=workdir)
            if end > start:
                chunk = records[start:end].tobytes()
                # The stream loop reads whole blocks of BLOCK_RECORDS: no-op
                # control records complete the last one, so everything
                # delivered is processed (a port would see each frame at once).
                pad = -(end - start) % BLOCK_RECORDS
                firmware.write(chunk + record.control(0) * pad)
            last = k == len(bounds) - 1
            if last:
                firmware.close_input()
                result = firmware.wait(timeout)
                report.final = result
            else:
                mode = modes[k]
                try:
                    firmware.process.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass
                _drain(firmware.process, idle=mode != "save")
                if mode == "save":
                    time.sleep(float(rng.uniform(0, 0.003)))
                os.kill(firmware.process.pid, signal.SIGKILL)
                result = firmware.wait(timeout)
                delivered = restored_ticks + _ticks(records, start, end)
                # a slot left invalid by the kill itself: cut in the middle of a write
                torn = any((data_dir / name).exists() and read_slot(data_dir / name) is None
                           and (data_dir / name).read_bytes() != before.get(name) for name in SLOTS)
                if mode == "tear":
                    newest = read_trip_store(data_dir)
                    if newest is not None:
                        path = data_dir / SLOTS[newest["slot"]]
                        old = before.get(SLOTS[newest["slot"]], b"")
                        size = path.stat().st_size
                        tear_slot(path, int(rng.integers(0, size)), TEAR_MODES[int(rng.integers(0, len(TEAR_MODES)))],
                                  rng, old)
                after = read_trip_store(data_dir)
                got = after["ticks"] if after else 0
                report.cuts.append(Cut(end, mode, delivered / 10, got / 10, (delivered - got) / 10, False,
                                       torn_by_kill=torn))
            corrupt, note = _check_boot(result, expected, killed=not last)
            if k > 0:
                prev = report.cuts[k - 1]
                prev.corrupt, prev.note = corrupt, note
            elif corrupt:
                report.exceptions += 1
            if _raised(result):
                report.exceptions += 1
            start = end
    finally:
        if owned is not None:
            owned.cleanup()
    return report


def _raised(result) -> bool:
    return "Traceback" in result.stderr or (result.returncode not in (0, -signal.SIGKILL))


def _check_boot(result, expected: dict | None, killed: bool) -> tuple[bool, str]:
    """Did this boot restore exactly the save ``expected`` (the newest valid slot)?"""
    if _raised(result):
        return True, "firmware raised: " + (result.stderr.strip().splitlines() or ["?"])[-1]
    restored = any(e.get("type") == "info" and e.get("event") == "trip_restored" for e in result.events)
    errors = [e for e in result.events if e.get("type") == "error"]
    if errors:
        return True, "error line: " + errors[0].get("message", "")
    if expected is None:
        return (restored, "restored a trip from an empty / torn store" if restored else "")
    if not restored:
        return True, "a valid save was not restored"
    statuses = [e for e in result.events if e.get("type") == "status"]
    if statuses:
        want = expected["ticks"] / 10 + 1.0
        if abs(statuses[0]["t_s"] - want) > 1e-6:
            return True, f"restored trip time {statuses[0]['t_s'] - 1.0} s, store says {want - 1.0} s"
        if statuses[0]["distance_km"] + 1e-9 < expected["distance_m"] / 1000:
            return True, "restored distance below the saved one"
    elif not killed and result.trip is not None:
        if result.trip["duration_s"] + 1e-6 < expected["ticks"] / 10:
            return True, "trip shorter than the save it restored"
    return False, ""


def plan_cuts(records: np.ndarray, count: int, save_interval_s: int, rng, shares=(0.5, 0.25, 0.25)) -> list:
    """``count`` cut points over a drive: ``shares`` of idle / save / tear cuts,
    idle ones at random records, the others at save points of the segment
    they fall in (computed as the plan goes, since every boot restarts the
    firmware's save timer)."""
    n = len(records)
    positions = np.sort(rng.choice(np.arange(1, n - 1), size=min(count, n - 2), replace=False))
    kinds = rng.choice(3, size=len(positions), p=np.asarray(shares) / np.sum(shares))
    plan = []
    start = 0
    for pos, kind in zip(positions, kinds):
        pos = int(pos)
        if pos <= start:
            continue
        mode = ("idle", "save", "tear")[int(kind)]
        if mode != "idle":
            points = save_points(records, start, pos + 1, save_interval_s)
            if len(points):
                pos = int(points[-1]) + 1  # the save tick's record delivered
            else:
                mode = "idle"
        if pos <= start or pos >= n:
            continue
        plan.append((pos, mode))
        start = pos
    return plan


# ---------------------------------------------------------------------------
# bus-off: the board loop against a machine.CAN that goes bus-off
# ---------------------------------------------------------------------------

_BUSOFF_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
FRAMES = sys.argv[2]
OFF_AT = int(sys.argv[3])      # ms after start: the controller goes bus-off
OFF_FOR = int(sys.argv[4])     # ms it stays bus-off (restart() fails before)
TOTAL = int(sys.argv[5])       # ms of run
WRAP = int(sys.argv[6])        # start the firmware clock this many ms before its 30-bit wrap

class _CAN:
    # the upstream machine.CAN API, the parts MachineCANPort uses
    MODE_NORMAL = 0
    MODE_SILENT = 3
    STATE_STOPPED = 0
    STATE_ACTIVE = 1
    STATE_WARNING = 2
    STATE_PASSIVE = 3
    STATE_BUS_OFF = 4
    FLAG_RTR = 1
    FLAG_EXT_ID = 2
    def __init__(self, id, bitrate, mode=0):
        self.data = open(FRAMES, "rb").read()
        self.n = len(self.data) // 24
        self.i = 0
        self.t0 = time.ticks_ms()
        self.off = False
        self.restarts = []
        self.dropped = 0
    def set_filters(self, f):
        pass
    def _now(self):
        return time.ticks_diff(time.ticks_ms(), self.t0)
    def state(self):
        now = self._now()
        if not self.off and OFF_AT <= now < OFF_AT + OFF_FOR:
            self.off = True
        return self.STATE_BUS_OFF if self.off else self.STATE_ACTIVE
    def restart(self):
        now = self._now()
        self.restarts.append(now)
        if now >= OFF_AT + OFF_FOR:
            self.off = False
    def recv(self, lst):
        now = self._now()
        d = self.data
        while self.i < self.n:
            o = self.i * 24
            t = (d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (d[o + 3] << 24)) // 1000
            if t > now:
                return None
            self.i += 1
            if self.off or (OFF_AT <= now < OFF_AT + OFF_FOR):
                self.dropped += 1  # a bus-off controller receives nothing
                continue
            lst[0] = d[o + 8] | (d[o + 9] << 8) | (d[o + 10] << 16) | (d[o + 11] << 24)
            n = d[o + 13]
            lst[1] = memoryview(d)[o + 16:o + 16 + n]
            lst[2] = 0
            lst[3] = 0
            return lst
        return None
    def send(self, *a):
        return None

class machine:
    CAN = _CAN
sys.modules["machine"] = machine

from keifw import app, canport, compat
if WRAP:
    base = (0x40000000 - WRAP * 1000 - compat._ticks_us()) & 0x3FFFFFFF
    def shifted():
        return (compat._ticks_us() + base) & 0x3FFFFFFF
    canport.now_us = shifted
    app.now_us = shifted
gen = app.vehicle_module(sys.argv[7])
port = canport.MachineCANPort(gen, 0, 500000, False)
fw, cfg = app.build(cfg_obj={"vehicle": sys.argv[7], "profile": "jp-expressway"}, port=port)
t0 = time.ticks_ms()
app.run_port(fw, port, stop=lambda: time.ticks_diff(time.ticks_ms(), t0) >= TOTAL)
fw.status()
c = port.can
print('{"type":"busoff","restarts_ms":[%s],"port_restarts":%d,"dropped":%d,"delivered":%d,"frames":%d}' % (
    ",".join(str(x) for x in c.restarts), port.restarts, c.dropped, c.i, fw.frames))
"""


def busoff_recovery(vehicle: str = "nbox-turbo", cycle: str = "hwfet", *, off_at_s: float = 1.0,
                    off_for_s: float = 1.2, total_s: float = 4.0, wrap_ms: int = 0,
                    micropython: str | None = None) -> dict:
    """The firmware's board loop (``app.run_port`` + ``MachineCANPort``) in
    MicroPython, fed a drive at real pace by a ``machine.CAN`` stand-in that
    goes bus-off at ``off_at_s`` for ``off_for_s`` (``restart()`` only brings
    it back after that). ``wrap_ms``: start the firmware clock that long
    before its 30-bit wrap, so a back-off spans it.

    Returns the restart times (ms after start), the back-off gaps between
    them, whether the port came back (status ``bus`` active again after
    bus_off) and the frames processed after recovery.
    """
    from . import sim
    from .harness import firmware_config
    from .paths import firmware_dir
    from .runtime import micropython_command

    result = sim.simulate(vehicle, cycle)
    recs = record.from_frames(result.frames)
    recs = recs[recs["timestamp_us"] < int((total_s + 1) * US)]
    module = firmware_config(vehicle)["vehicle"]
    with tempfile.TemporaryDirectory(prefix="keidrive-busoff-") as tmp:
        frames = Path(tmp) / "frames.bin"
        frames.write_bytes(recs.tobytes())
        script = Path(tmp) / "busoff.py"
        script.write_text(_BUSOFF_SCRIPT)
        cmd = [micropython or micropython_command(), str(script), str(firmware_dir()), str(frames),
               str(int(off_at_s * 1000)), str(int(off_for_s * 1000)), str(int(total_s * 1000)), str(int(wrap_ms)),
               module]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=total_s + 60)
    if proc.returncode != 0:
        raise KeidriveError(f"bus-off run failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = next(e for e in events if e.get("type") == "busoff")
    states = [e["bus"] for e in events if e.get("type") == "status"]
    restarts = summary["restarts_ms"]
    off_end = (off_at_s + off_for_s) * 1000
    return {
        "restarts_ms": restarts,
        "backoff_ms": [b - a for a, b in zip(restarts, restarts[1:])],
        "bus_states": states,
        "went_bus_off": "bus_off" in states,
        "recovered": "bus_off" in states and states[-1] == "active",
        "recovered_after_ms": next((r - off_end for r in restarts if r >= off_end), None),
        "frames": summary["frames"],
        "dropped_while_off": summary["dropped"],
        "errors": [e for e in events if e.get("type") == "error"],
    }
