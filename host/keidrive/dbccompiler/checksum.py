"""Frame checksum algorithms named by the DBC message attribute ``ChecksumAlgorithm``.

The generated module carries the 256-entry table as ``bytes``; this module is
the host-side reference the compiler builds that table from and the tests
check frames against.
"""

from dataclasses import dataclass

ATTRIBUTE = "ChecksumAlgorithm"
NO_CHECKSUM = "None"


@dataclass(frozen=True)
class Crc8:
    """A non-reflected CRC-8 over every data byte except the checksum byte, in order."""

    name: str
    poly: int
    init: int
    xorout: int

    def table(self) -> bytes:
        entries = []
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = ((crc << 1) ^ self.poly if crc & 0x80 else crc << 1) & 0xFF
            entries.append(crc)
        return bytes(entries)

    def compute(self, data: bytes, skip_byte: int = -1) -> int:
        table = self.table()
        crc = self.init
        for index, byte in enumerate(data):
            if index != skip_byte:
                crc = table[crc ^ byte]
        return crc ^ self.xorout


ALGORITHMS = {
    # CRC-8/SAE-J1850: check value over b"123456789" is 0x4B.
    "CRC8_SAEJ1850": Crc8("CRC8_SAEJ1850", poly=0x1D, init=0xFF, xorout=0xFF),
}
