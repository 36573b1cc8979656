"""The hub's record checks: the vectorised check (large reads) and the
one-by-one check (small reads) agree on every record, and a seal is what the
hub verifies. Both checks are this project's own code, so the agreement
proves consistency, not correctness; the hub tests (test_vbus_hub_limits.py)
check what a receiver actually gets."""

import numpy as np
from keidrive.io import record
from keidrive.vbus import wire


def _awkward_records(n: int, seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, dtype=record.DTYPE)
    rows["timestamp_us"] = rng.integers(0, 1 << 40, n, dtype=np.uint64)
    rows["flags"] = rng.choice([0, 1, 2, 3, 4, 5, 0x80, 0x81, 0x40, 0x08], n)
    rows["dlc"] = rng.choice([0, 1, 7, 8, 9, 15, 255], n)
    rows["can_id"] = rng.choice([0, 1, 2, 77, 0x7FF, 0x800, 0x1FFFFFFF, 0x20000000, 0xFFFFFFFF], n)
    rows["data"] = np.where(rng.random((n, 8)) < 0.8, 0, rng.integers(0, 256, (n, 8)))
    raw = bytearray(rows.tobytes())
    sealed = bytearray(wire.seal(bytes(raw)))
    for i in range(n):  # unsealed, sealed, or a broken seal
        choice = rng.integers(0, 3)
        if choice:
            raw[i * 24 : i * 24 + 24] = sealed[i * 24 : i * 24 + 24]
            if choice == 2:
                raw[i * 24 + 15] ^= 1 << int(rng.integers(0, 8))
    return bytes(raw)


def test_vectorised_and_one_by_one_checks_agree():
    data = _awkward_records(4000)
    rows = np.frombuffer(data, np.uint8).reshape(-1, 24)
    for strict in (False, True):
        ok, sealed = wire._valid(rows, strict)
        one_by_one = [wire._valid_one(data, i * 24, strict) for i in range(len(rows))]
        assert [tuple(map(bool, pair)) for pair in zip(ok, sealed)] == one_by_one
        assert 100 < ok.sum() < len(rows) - 100  # both kinds well represented


def test_the_seal_is_the_serial_links_framing():
    # One meaning for bytes 14-15 on the hub and on a board's UART.
    from keidrive.target import link

    data = _awkward_records(500)
    assert wire.seal(data) == link.frame(data)
    assert b"".join(wire.seal_one(data[i : i + 24]) for i in range(0, len(data), 24)) == link.frame(data)


def test_a_sealed_record_passes_and_a_flipped_bit_fails_it():
    raw = wire.seal_one(record.pack(123456, 0x18FEF100, record.FLAG_EXTENDED, 8, bytes(range(8))))
    assert raw == wire.seal(record.pack(123456, 0x18FEF100, record.FLAG_EXTENDED, 8, bytes(range(8))))
    assert wire._valid_one(raw, 0, strict=True) == (True, True)
    for bit in range(24 * 8):
        if bit // 8 in (14, 15):
            continue
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << bit % 8
        assert wire._valid_one(bytes(flipped), 0, strict=True)[0] is False
