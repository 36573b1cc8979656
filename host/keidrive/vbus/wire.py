"""Framing on the hub's streams: every record is checked before it reaches
the bus, and a stream that stray bytes knocked out of step finds its way back.

A record (``keidrive.io.record``, 24 bytes) is valid when its flags are known
ones, its DLC is 0-8 with zero padding after the data, its identifier fits
its format (11 bits, or 29 for an extended or error frame) and a control
record's command fits a byte.

The record's reserved field (bytes 14-15) carries a seal, the same bytes as
the serial link's framing (keidrive.target.link): byte 14 the marker
``SYNC``, byte 15 a CRC-8/SAE-J1850 of the other 23 bytes. Every
keidrive.vbus client seals what it sends, and once a connection has
sent one sealed record the hub holds it to sealing: after stray bytes, only an
offset where a marker and its check agree counts as the start of a record,
so the stream cannot lock on to a plausible-looking misaligned frame.
Writers that leave the field 0 (the firmware's stream port, the virtual
board) get the other checks only.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..io import record

SYNC = 0xA5
SIZE = record.SIZE
KNOWN_FLAGS = record.FLAG_EXTENDED | record.FLAG_REMOTE | record.FLAG_ERROR | record.FLAG_CONTROL
MAX_COMMAND = 0xFF  # the firmware reads a control record's command from byte 8 alone
_WIDE = record.FLAG_EXTENDED | record.FLAG_ERROR  # 29-bit identifier field
_BYTE_INDEX = np.arange(8, dtype=np.uint8)
FEW = 16  # records below which a read is checked one by one, not with numpy
_COUNT_MAX = (1 << 24) - 1


def _crc8_table() -> bytes:
    """CRC-8/SAE-J1850 (poly 0x1D, init 0xFF, xorout 0xFF), the serial link's
    check (keidrive.target.link, whose module pulls in the DBC compiler: too
    heavy for the hub to import)."""
    table = bytearray(256)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table[byte] = crc
    return bytes(table)


_CRC8 = _crc8_table()
_CRC8_NP = np.frombuffer(_CRC8, np.uint8)
_CHECKED = [k for k in range(SIZE) if k != 15]  # every byte but the check, the marker included


def _check(rows: np.ndarray) -> np.ndarray:
    crc = np.full(len(rows), 0xFF, np.uint8)
    for k in _CHECKED:
        crc = _CRC8_NP[crc ^ rows[:, k]]
    return crc ^ 0xFF


def seal(records: bytes) -> bytes:
    """``records`` (whole 24-byte records) with their seals set."""
    if len(records) % SIZE:
        raise ValueError(f"{len(records)} bytes is not a whole number of {SIZE}-byte records")
    rows = np.frombuffer(records, np.uint8).reshape(-1, SIZE).copy()
    rows[:, 14] = SYNC
    rows[:, 15] = _check(rows)
    return rows.tobytes()


def _check_one(raw: bytes, offset: int = 0) -> int:
    """``_check`` of one record, without numpy's per-call cost."""
    crc = 0xFF
    table = _CRC8
    for k in _CHECKED:
        crc = table[crc ^ raw[offset + k]]
    return crc ^ 0xFF


def seal_one(raw: bytes) -> bytes:
    """One record sealed (python-can's ``send``)."""
    marked = raw[:14] + bytes((SYNC,)) + raw[15:]
    return marked[:15] + bytes((_check_one(marked),)) + raw[16:]


def _valid_one(data: bytes, offset: int, strict: bool) -> tuple[bool, bool]:
    """``_valid`` of the record at ``offset``, for the few records of a small
    read (numpy's per-call cost would exceed the work)."""
    _, ident, flags, dlc, reserved, payload = record.RECORD.unpack_from(data, offset)
    if dlc > 8 or flags & ~KNOWN_FLAGS or payload[dlc:].strip(b"\0"):
        return False, False
    if flags & record.FLAG_CONTROL:
        if flags != record.FLAG_CONTROL or ident > MAX_COMMAND:
            return False, False
    elif ident > (0x1FFFFFFF if flags & _WIDE else 0x7FF):
        return False, False
    sealed = data[offset + 14] == SYNC and data[offset + 15] == _check_one(data, offset)
    return sealed or (reserved == 0 and not strict), sealed


def _valid(rows: np.ndarray, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """(valid, valid and sealed) for each row of ``rows`` (N x 24 bytes,
    possibly a sliding view over a stream)."""
    flags = rows[:, 12]
    ident = np.ascontiguousarray(rows[:, 8:12]).view("<u4")[:, 0]
    control = (flags & record.FLAG_CONTROL) != 0
    dlc = rows[:, 13]
    ok = (dlc <= 8) & ((flags & (~KNOWN_FLAGS & 0xFF)) == 0)
    ok &= ~((rows[:, 16:] != 0) & (_BYTE_INDEX >= dlc[:, None])).any(axis=1)
    limit = np.where((flags & _WIDE) != 0, 0x1FFFFFFF, 0x7FF)
    ok &= np.where(control, (flags == record.FLAG_CONTROL) & (ident <= MAX_COMMAND), ident <= limit)
    sealed = (rows[:, 14] == SYNC) & (rows[:, 15] == _check(rows))
    if strict:
        ok &= sealed
    else:
        ok &= sealed | ((rows[:, 14] == 0) & (rows[:, 15] == 0))
    return ok, ok & sealed


def split(data: bytes, strict: bool) -> tuple[list, int, int, bool]:
    """The valid records at the front of a stream's buffered ``data``.

    Returns (offsets of the valid records, bytes consumed, bytes skipped,
    strict from now on). Bad records and stray bytes are skipped up to the
    next offset where a whole valid record starts. A tail too short to judge
    stays unconsumed for the next read.
    """
    stream = np.frombuffer(data, np.uint8)
    offsets: list = []
    skipped = 0
    pos = 0
    end = len(data)
    while end - pos >= SIZE:
        count = (end - pos) // SIZE
        if count < FEW:
            good = 0
            while good < count:
                ok, sealed = _valid_one(data, pos + good * SIZE, strict)
                if not ok:
                    break
                strict = strict or sealed
                good += 1
        else:
            ok, sealed = _valid(stream[pos : pos + count * SIZE].reshape(count, SIZE), strict)
            bad = np.flatnonzero(~ok)
            good = count if bad.size == 0 else int(bad[0])
            strict = strict or bool(sealed[:good].any())
        offsets.extend(range(pos, pos + good * SIZE, SIZE))
        pos += good * SIZE
        if good == count:
            break
        # Out of step: look for the next offset at which a whole record checks out.
        hit = []
        if end - pos - 1 >= SIZE:
            ok, _ = _valid(sliding_window_view(stream[pos + 1 :], SIZE), strict)
            hit = np.flatnonzero(ok)
        resume = pos + 1 + int(hit[0]) if len(hit) else max(pos + 1, end - SIZE + 1)
        skipped += resume - pos
        pos = resume
    return offsets, pos, skipped, strict


def stats_record(clients: int, frames: int, load: float, peak_load: float, dropped: int, rejected: int) -> bytes:
    """The hub's answer to CONTROL_STATS. Its timestamp field carries the
    clients attached (16 bits), then this client's dropped frames and rejected
    records (24 bits each, saturating); its data the frames carried (u32) and
    the load now and at peak (u16 each, thousandths)."""
    counts = min(clients, 0xFFFF) | min(dropped, _COUNT_MAX) << 16 | min(rejected, _COUNT_MAX) << 40
    data = (
        min(frames, 0xFFFFFFFF).to_bytes(4, "little")
        + min(int(load * 1000), 0xFFFF).to_bytes(2, "little")
        + min(int(peak_load * 1000), 0xFFFF).to_bytes(2, "little")
    )
    return record.pack(counts, record.CONTROL_STATS, record.FLAG_CONTROL, 8, data)


def parse_stats(raw: bytes) -> dict:
    counts = int.from_bytes(raw[0:8], "little")
    data = raw[16:24]
    return {
        "clients": counts & 0xFFFF,
        "frames": int.from_bytes(data[0:4], "little"),
        "load": int.from_bytes(data[4:6], "little") / 1000,
        "peak_load": int.from_bytes(data[6:8], "little") / 1000,
        "dropped": counts >> 16 & _COUNT_MAX,
        "rejected": counts >> 40 & _COUNT_MAX,
    }


def claim_record(pid: int) -> bytes:
    """A client's CONTROL_CLAIM: its process id in the timestamp field."""
    return record.pack(pid, record.CONTROL_CLAIM, record.FLAG_CONTROL, 0, b"")


def claim_answer(granted: bool, owner_pid: int) -> bytes:
    """The hub's answer to CONTROL_CLAIM: the owner's process id in the
    timestamp field, data byte 0 whether the claim was granted."""
    return record.pack(owner_pid, record.CONTROL_CLAIM, record.FLAG_CONTROL, 1, bytes((granted,)))


def parse_claim(raw: bytes) -> tuple[bool, int]:
    """(granted, the owner's process id) of a claim answer."""
    return bool(raw[16]), int.from_bytes(raw[0:8], "little")
