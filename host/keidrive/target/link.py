"""The host half of the serial link (the firmware half is firmware/keifw/link.py).

Every 24-byte record gets a sync byte (byte 14) and a CRC-8/SAE-J1850 over
its other 23 bytes (byte 15), so the firmware can find record boundaries
again after a lost or stray byte. A drive ends with an end-of-drive record
and a block of padding: a board's stdin read blocks until its buffer is
full, and the padding fills the last one whatever the link lost.
"""

from __future__ import annotations

import numpy as np

from ..dbccompiler.checksum import ALGORITHMS
from ..io import record

SYNC = 0xA5
OFF_SYNC = 14
OFF_CHECK = 15
# firmware/keifw/app.py BLOCK_RECORDS: the records one stdin read asks for
BLOCK_RECORDS = 256
CONTROL_PAD = 0  # a control record the firmware skips

_TABLE = np.frombuffer(ALGORITHMS["CRC8_SAEJ1850"].table(), dtype=np.uint8)


def frame(records) -> bytes:
    """``records`` (numpy ``record.DTYPE``, or packed bytes) with sync and check bytes set."""
    raw = np.frombuffer(records if isinstance(records, (bytes, bytearray)) else records.tobytes(),
                        dtype=np.uint8).reshape(-1, record.SIZE).copy()
    raw[:, OFF_SYNC] = SYNC
    crc = np.full(len(raw), 0xFF, dtype=np.uint8)
    for k in range(record.SIZE):
        if k != OFF_CHECK:
            crc = _TABLE[crc ^ raw[:, k]]
    raw[:, OFF_CHECK] = crc ^ 0xFF
    return raw.tobytes()


def ending() -> bytes:
    """End of drive, then one block of padding."""
    pad = record.control(CONTROL_PAD)
    return frame(record.control(record.CONTROL_END_OF_DRIVE) + pad * BLOCK_RECORDS)
