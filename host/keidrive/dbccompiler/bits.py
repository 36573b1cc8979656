"""Where each raw bit of a signal lives in the frame.

Both decoders and encoders are generated as straight-line byte operations,
so a signal is described as *chunks*: runs of raw bits that sit contiguously
in one data byte. Within a byte, raw bit order always follows byte bit order
(for Intel and Motorola alike), so one shift and one mask move a chunk.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """Raw bits ``[raw_pos, raw_pos + width)`` are bits ``[shift, shift + width)`` of ``data[byte]``."""

    byte: int
    shift: int
    width: int
    raw_pos: int

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


def raw_bit_locations(start: int, length: int, byte_order: str) -> list[tuple[int, int]]:
    """(byte, bit) of each raw bit, least significant raw bit first.

    ``start`` is cantools' ``Signal.start``: the LSB for Intel, the MSB in DBC
    "sawtooth" numbering for Motorola.
    """
    if byte_order == "little_endian":
        return [divmod(start + i, 8) for i in range(length)]
    # Motorola: number the frame's bits MSB-first ("sequential" order); the
    # signal then occupies a contiguous run whose first bit is its MSB.
    msb_sequential = 8 * (start // 8) + (7 - start % 8)
    locations = []
    for i in range(length):
        sequential = msb_sequential + (length - 1 - i)
        locations.append((sequential // 8, 7 - sequential % 8))
    return locations


def chunks(start: int, length: int, byte_order: str, lo: int = 0, hi: int | None = None) -> list[Chunk]:
    """The chunks holding raw bits ``[lo, hi)`` (default: all), ordered by raw position."""
    hi = length if hi is None else hi
    result: list[Chunk] = []
    for raw_pos, (byte, bit) in enumerate(raw_bit_locations(start, length, byte_order)):
        if not lo <= raw_pos < hi:
            continue
        last = result[-1] if result else None
        if last and last.byte == byte and last.shift + last.width == bit:
            result[-1] = Chunk(byte, last.shift, last.width + 1, last.raw_pos)
        else:
            result.append(Chunk(byte, bit, 1, raw_pos))
    return result


def bytes_covered(start: int, length: int, byte_order: str) -> set[int]:
    return {byte for byte, _ in raw_bit_locations(start, length, byte_order)}
