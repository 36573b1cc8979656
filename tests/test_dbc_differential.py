"""Generated decoders vs cantools, on random payloads, in MicroPython and CPython."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keidrive.dbccompiler.bits import raw_bit_locations

# Reads "index:hexpayload" tokens from a file; per frame prints
# [dispatch result, {signal: exact raw}, decode() dict or None] as JSON.
DECODE_SCRIPT = """
import sys, json
sys.path.insert(0, sys.argv[1])
import gen as m
values = m.new_values()
for token in open(sys.argv[2]).read().split():
    index, payload = token.split(":")
    index = int(index)
    data = bytes.fromhex(payload)
    result = m.dispatch(m.frame_key(m.MSG_IDS[index], m.MSG_EXTENDED[index]), data, len(data), values)
    slots = m.MSG_SIGNAL_SLOTS[index]
    pages = m.MSG_MUX_PAGES[index]
    if pages is not None and m.MSG_MUX_SLOT[index] >= 0:
        slots = slots + pages.get(values[m.MSG_MUX_SLOT[index]], ())
    raw = {}
    for slot in slots:
        raw[m.SLOT_SIGNAL[slot]] = m.raw_value(values, slot)
    print(json.dumps([result, raw, m.decode(m.MSG_IDS[index], data, m.MSG_EXTENDED[index])]))
"""

FRAMES_PER_MESSAGE = 12


def _with_valid_page(message, payload: bytes, page: int) -> bytes:
    """``payload`` with the multiplexer set to ``page`` (random payloads rarely hit a defined page)."""
    mux = next(signal for signal in message.signals if signal.is_multiplexer)
    data = bytearray(payload)
    for bit, (byte, position) in enumerate(raw_bit_locations(mux.start, mux.length, mux.byte_order)):
        data[byte] = data[byte] & ~(1 << position) | ((page >> bit) & 1) << position
    return bytes(data)


@st.composite
def frames(draw, database):
    result = []
    for index, message in enumerate(sorted(database.messages, key=lambda m: (m.is_extended_frame, m.frame_id))):
        for _ in range(FRAMES_PER_MESSAGE):
            payload = draw(st.binary(min_size=message.length, max_size=message.length))
            if message.is_multiplexed() and draw(st.booleans()):
                pages = sorted({i for s in message.signals for i in s.multiplexer_ids or ()})
                payload = _with_valid_page(message, payload, draw(st.sampled_from(pages)))
            result.append((index, message, payload))
    return result


def _close(got, expected, raw, signal) -> bool:
    if isinstance(expected, int):
        return type(got) is int and got == expected
    # The generated value is the exactly-rounded rational; cantools' float
    # arithmetic (raw * scale + offset) may cancel, so allow for its terms' size.
    magnitude = abs(raw * signal.scale) + abs(signal.offset)
    return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9 * magnitude)


def test_decode_matches_cantools(compiled_set, interpreter, tmp_path_factory):
    database, directory = compiled_set

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames(database))
    def check(batch):
        payload_file = tmp_path_factory.mktemp("payloads") / "frames.txt"
        payload_file.write_text(" ".join(f"{index}:{payload.hex()}" for index, _, payload in batch))
        lines = interpreter(DECODE_SCRIPT, str(directory), str(payload_file)).splitlines()
        assert len(lines) == len(batch)
        for (index, message, payload), line in zip(batch, lines):
            result, raw, decoded = json.loads(line)
            assert result == index
            where = f"{message.name} {payload.hex()}"
            try:
                expected_raw = message.decode(payload, decode_choices=False, scaling=False)
                expected = message.decode(payload, decode_choices=False)
            except Exception:  # an undefined multiplexer value: cantools refuses, decode() gives None
                assert message.is_multiplexed(), where
                assert decoded is None, where
                continue
            assert raw == expected_raw, where
            assert decoded is not None and decoded.keys() == expected.keys(), where
            for name, value in expected.items():
                signal = message.get_signal_by_name(name)
                assert _close(decoded[name], value, expected_raw[name], signal), (where, name, decoded[name], value)

    check()
