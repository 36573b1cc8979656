"""Frame checksum algorithms: the DBC message attribute ``ChecksumAlgorithm`` or a roles file's [checksum].

Offered: CRC-8/SAE-J1850 (a table-driven CRC over every byte but the checksum
byte), Toyota's byte sum and Honda's nibble sum as opendbc's car ports define
them (both over the frame id too, the checksum in the last byte). This module
holds the one host implementation of each: the generated code's tables and
seeds are built from it, the simulator's encoder (sim/frames.py) fills
frames with it (``compute`` takes one frame's bytes or an N x length array
of frames) and the tests check frames against it; the firmware side is
``decode_at`` (check) and ``keifw/dbcrt.py`` (encode). Anything else is
unchecked, and the compile says so.
"""

from dataclasses import dataclass

import numpy as np

ATTRIBUTE = "ChecksumAlgorithm"
NO_CHECKSUM = "None"
# The runtime's algorithm kinds (CHECKSUM_ALGORITHMS[k][0] in a generated module).
KIND_CRC8 = 0
KIND_BYTE_SUM = 1
KIND_NIBBLE_SUM = 2


def _rows(data):
    """(frames as an N x length int array, whether one frame's bytes were given)."""
    if isinstance(data, np.ndarray):
        return data.astype(np.int64).reshape(len(data), -1), False
    return np.frombuffer(bytes(data), np.uint8).astype(np.int64)[None, :], True


def _result(values: np.ndarray, one: bool):
    return int(values[0]) if one else values.astype(np.uint8)


def _id_bytes(frame_id: int) -> list[int]:
    result = []
    while frame_id:
        result.append(frame_id & 0xFF)
        frame_id >>= 8
    return result


@dataclass(frozen=True)
class Crc8:
    """A non-reflected CRC-8 over every data byte except the checksum byte, in order."""

    name: str
    poly: int
    init: int
    xorout: int
    kind = KIND_CRC8
    width = 8
    last_byte_only = False

    def table(self) -> bytes:
        entries = []
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = ((crc << 1) ^ self.poly if crc & 0x80 else crc << 1) & 0xFF
            entries.append(crc)
        return bytes(entries)

    def seed(self, frame_id: int, extended: bool, length: int) -> int:
        return self.init

    def compute(self, data, skip_byte: int = -1, frame_id: int = 0, extended: bool = False):
        rows, one = _rows(data)
        table = np.frombuffer(self.table(), np.uint8).astype(np.int64)
        crc = np.full(len(rows), self.init, np.int64)
        for index in range(rows.shape[1]):
            if index != skip_byte:
                crc = table[crc ^ rows[:, index]]
        return _result(crc ^ self.xorout, one)


@dataclass(frozen=True)
class ByteSum:
    """Toyota: (length + the frame id's bytes + every data byte but the last) mod 256, in the last byte."""

    name: str
    kind = KIND_BYTE_SUM
    width = 8
    last_byte_only = True
    xorout = 0

    def seed(self, frame_id: int, extended: bool, length: int) -> int:
        return length + sum(_id_bytes(frame_id))

    def compute(self, data, skip_byte: int = -1, frame_id: int = 0, extended: bool = False):
        rows, one = _rows(data)
        total = self.seed(frame_id, extended, rows.shape[1]) + rows.sum(axis=1)
        if 0 <= skip_byte < rows.shape[1]:
            total -= rows[:, skip_byte]
        return _result(total & 0xFF, one)


@dataclass(frozen=True)
class NibbleSum:
    """Honda: 8 - (the frame id's nibbles + every data nibble but the checksum), + 3 for an
    extended id, mod 16, in the low nibble of the last byte."""

    name: str
    kind = KIND_NIBBLE_SUM
    width = 4
    last_byte_only = True
    xorout = 0

    def seed(self, frame_id: int, extended: bool, length: int) -> int:
        """The id's part, folded so that checksum = -(seed + data nibbles) mod 16."""
        nibbles = sum((byte & 0xF) + (byte >> 4) for byte in _id_bytes(frame_id))
        return nibbles - 8 - (3 if extended else 0)

    def compute(self, data, skip_byte: int = -1, frame_id: int = 0, extended: bool = False):
        rows, one = _rows(data)
        total = np.full(len(rows), self.seed(frame_id, extended, rows.shape[1]), np.int64)
        for index in range(rows.shape[1]):
            byte = rows[:, index] >> 4 if index == skip_byte else rows[:, index]  # the checksum: the low nibble
            total += (byte & 0xF) + (byte >> 4)
        return _result(-total & 0xF, one)


ALGORITHMS = {
    # CRC-8/SAE-J1850: check value over b"123456789" is 0x4B.
    "CRC8_SAEJ1850": Crc8("CRC8_SAEJ1850", poly=0x1D, init=0xFF, xorout=0xFF),
    "TOYOTA": ByteSum("TOYOTA"),
    "HONDA": NibbleSum("HONDA"),
}
# Other spellings a roles file may use.
ALIASES = {"CRC8SAEJ1850": "CRC8_SAEJ1850", "SAEJ1850": "CRC8_SAEJ1850", "J1850": "CRC8_SAEJ1850"}


def canonical_name(name: str) -> str:
    """The ALGORITHMS key a spelling means ("crc8_sae_j1850", "toyota"...), else the name unchanged."""
    key = name.upper().replace("-", "_").replace("/", "_")
    if key in ALGORITHMS:
        return key
    return ALIASES.get(key.replace("_", ""), name)
