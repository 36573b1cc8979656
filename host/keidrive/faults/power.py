"""Power cuts: the firmware process killed (SIGKILL) at chosen records, its
slot files torn, rebooted on the rest of the drive, and every restore checked
against an independent reader of the trip store."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import KeidriveError
from ..io import record
from .traffic import BLOCK_RECORDS, US

# A firmware that has not taken what it was given after this long is stuck, not slow.
ACK_TIMEOUT_S = 120.0

# ---------------------------------------------------------------------------
# the trip store, read independently of the firmware
# ---------------------------------------------------------------------------

SLOTS = ("trip_a.bin", "trip_b.bin")
MAGIC = b"KDT1"
# keifw/economy.py accumulator layout (whole, remainder pairs)
ACC_DIST, ACC_FUEL, ACC_TICKS, N_ACC = 0, 2, 14, 24
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


def _until_read(process, timeout: float = ACK_TIMEOUT_S) -> None:
    """Wait until the firmware has read everything written to its stdin."""
    fd = process.stdin.fileno()
    deadline = time.monotonic() + timeout
    while _pipe_pending(fd) and process.poll() is None:
        if time.monotonic() > deadline:
            raise KeidriveError(f"the firmware did not read its input within {timeout:.0f} s")
        time.sleep(0.0005)


def _until_acknowledged(firmware, records: int, timeout: float = ACK_TIMEOUT_S) -> None:
    """Wait until the firmware says it has processed ``records`` records
    (its ack line, answering the CONTROL_ACK written after them)."""
    deadline = time.monotonic() + timeout
    while not any(e.get("type") == "ack" and e.get("records") == records for e in firmware.events):
        if firmware.process.poll() is not None:
            raise KeidriveError(firmware.wait(1).failure())
        if time.monotonic() > deadline:
            raise KeidriveError(f"the firmware did not acknowledge its {records} records within {timeout:.0f} s")
        time.sleep(0.005)


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
    from ..drive.harness import FirmwareProcess

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
            last = k == len(bounds) - 1
            mode = None if last else modes[k]
            if end > start:
                chunk = records[start:end].tobytes()
                # The stream loop reads whole blocks of BLOCK_RECORDS: no-op
                # control records complete the last one, so everything
                # delivered is processed (a port would see each frame at once);
                # before a cut other than at a save, the block ends in a
                # CONTROL_ACK the firmware answers once it has processed the rest.
                ack = mode in ("idle", "tear")
                pad = -(end - start + ack) % BLOCK_RECORDS
                firmware.write(chunk + record.control(0) * pad + (record.control(record.CONTROL_ACK) if ack else b""))
            if last:
                firmware.close_input()
                result = firmware.wait(timeout)
                report.final = result
            else:
                try:
                    firmware.process.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass
                if mode == "save":  # cut a random 0-3 ms after it has read the save tick's record
                    _until_read(firmware.process)
                    time.sleep(float(rng.uniform(0, 0.003)))
                elif end > start:
                    _until_acknowledged(firmware, end - start + pad)
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

