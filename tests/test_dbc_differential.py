"""Generated decoders vs cantools, on random payloads, in MicroPython and CPython."""

import copy
import json
import math
import struct

import cantools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keidrive.dbccompiler.bits import raw_bit_locations

# Reads "index:hexpayload" tokens from a file; per frame prints
# [dispatch result, {signal: exact raw}, decode() dict or None] as JSON, a
# float as ["f", hex of its IEEE double] (JSON has no NaN or infinity).
DECODE_SCRIPT = """
import sys, json, struct
sys.path.insert(0, sys.argv[1])
import gen as m


def exact(value):
    return ["f", struct.pack("<d", value).hex()] if isinstance(value, float) else value


values = m.new_values()
for token in open(sys.argv[2]).read().split():
    index, payload = token.split(":")
    index = int(index)
    data = bytes.fromhex(payload)
    result = m.dispatch(m.frame_key(m.MSG_IDS[index], m.MSG_EXTENDED[index]), data, len(data), values)
    raw = {}
    for slot in m.frame_slots(index, values) or m.MSG_LAYOUT[index][0]:
        raw[m.SLOT_SIGNAL[slot]] = m.raw_value(values, slot)
    decoded = m.decode(m.MSG_IDS[index], data, m.MSG_EXTENDED[index])
    if decoded is not None:
        decoded = {name: exact(value) for name, value in decoded.items()}
    print(json.dumps([result, raw, decoded]))
"""

FRAMES_PER_MESSAGE = 12


def _with_page(mux, payload: bytes, page: int) -> bytes:
    """``payload`` with multiplexer ``mux`` set to ``page`` (random payloads rarely hit a defined page)."""
    data = bytearray(payload)
    for bit, (byte, position) in enumerate(raw_bit_locations(mux.start, mux.length, mux.byte_order)):
        data[byte] = data[byte] & ~(1 << position) | ((page >> bit) & 1) << position
    return bytes(data)


def _steer_pages(draw, message, tree, payload: bytes) -> bytes:
    """Set each multiplexer on the way down cantools' signal tree to one of its pages."""
    for node in tree:
        if isinstance(node, dict):
            for name, pages in node.items():
                page = draw(st.sampled_from(sorted(pages)))
                payload = _with_page(message.get_signal_by_name(name), payload, page)
                payload = _steer_pages(draw, message, pages[page], payload)
    return payload


def generated_order(database, names=None):
    """The messages in the generated module's order (standard ids, then extended, by id)."""
    messages = sorted(database.messages, key=lambda m: (m.is_extended_frame, m.frame_id))
    return [m for m in messages if names is None or m.name in names]


@st.composite
def frames(draw, messages, per_message=FRAMES_PER_MESSAGE):
    result = []
    for index, message in enumerate(messages):
        for _ in range(per_message):
            payload = draw(st.binary(min_size=message.length, max_size=message.length))
            if message.is_multiplexed() and draw(st.booleans()):
                payload = _steer_pages(draw, message, message.signal_tree, payload)
            result.append((index, message, payload))
    return result


def _float_of(value):
    if isinstance(value, list):  # ["f", IEEE double hex] from the script
        return struct.unpack("<d", bytes.fromhex(value[1]))[0]
    return value


def _close(got, expected, raw, signal) -> bool:
    if signal.is_float:
        got = _float_of(got)
        return (math.isnan(got) and math.isnan(expected)) or got == expected
    if isinstance(expected, int):
        return type(got) is int and got == expected
    got = _float_of(got)
    # The generated value is the exactly-rounded rational; cantools' float
    # arithmetic (raw * scale + offset) may cancel, so allow for its terms' size.
    magnitude = abs(raw * signal.scale) + abs(signal.offset)
    return math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9 * magnitude)


def _raw_of(signal, raw: int):
    """cantools' unscaled value: the raw int, or for an IEEE float signal the float its bits hold."""
    if not signal.is_float:
        return raw
    return struct.unpack("<f" if signal.length == 32 else "<d", raw.to_bytes(signal.length // 8, "little"))[0]


def _reference(message, payload: bytes, scaling: bool) -> dict:
    """cantools' decode; for overlapping signals (loaded non-strict, which cantools' message codec
    cannot unpack) cantools' decode of each signal alone in a one-signal copy of the message,
    down the multiplexers' pages (an undefined page raises DecodeError, as cantools)."""
    try:
        return message.decode(payload, decode_choices=False, scaling=scaling)
    except cantools.database.DecodeError:
        pass

    def alone(signal, scaled):
        signal = copy.copy(signal)  # a plain signal: its page is chosen here
        signal.multiplexer_ids, signal.multiplexer_signal, signal.is_multiplexer = None, None, False
        one = cantools.database.can.Message(message.frame_id, message.name, message.length, [signal],
                                             is_extended_frame=message.is_extended_frame, strict=False)
        return one.decode(payload, decode_choices=False, scaling=scaled)[signal.name]

    def walk(tree, result):
        for node in tree:
            if isinstance(node, str):
                result[node] = alone(message.get_signal_by_name(node), scaling)
                continue
            for name, pages in node.items():
                signal = message.get_signal_by_name(name)
                result[name] = alone(signal, scaling)
                page = alone(signal, False)
                if page not in pages:
                    raise cantools.database.DecodeError(f"{name}: no page {page}")
                walk(pages[page], result)
        return result

    return walk(message.signal_tree, {})


def check_batch(batch, lines) -> int:
    """Assert each frame's fast-path raw values and debug-path decode() match cantools; frames checked."""
    assert len(lines) == len(batch)
    for (index, message, payload), line in zip(batch, lines):
        result, raw, decoded = json.loads(line)
        assert result == index
        where = f"{message.name} {payload.hex()}"
        try:
            expected_raw = _reference(message, payload, scaling=False)
            expected = _reference(message, payload, scaling=True)
        except Exception:  # an undefined multiplexer value: cantools refuses, decode() gives None
            assert message.is_multiplexed(), where
            assert decoded is None, where
            continue
        assert raw.keys() == expected_raw.keys(), where
        for name, value in expected_raw.items():
            signal = message.get_signal_by_name(name)
            got = _raw_of(signal, raw[name])
            assert got == value or (signal.is_float and math.isnan(got) and math.isnan(value)), (where, name)
        assert decoded is not None and decoded.keys() == expected.keys(), where
        for name, value in expected.items():
            signal = message.get_signal_by_name(name)
            assert _close(decoded[name], value, expected_raw[name], signal), (where, name, decoded[name], value)
    return len(batch)


def run_batch(interpreter, directory, batch, tmp_path_factory) -> list[str]:
    payload_file = tmp_path_factory.mktemp("payloads") / "frames.txt"
    payload_file.write_text(" ".join(f"{index}:{payload.hex()}" for index, _, payload in batch))
    return interpreter(DECODE_SCRIPT, str(directory), str(payload_file)).splitlines()


def test_decode_matches_cantools(compiled_set, interpreter, tmp_path_factory):
    database, directory = compiled_set

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames(generated_order(database)))
    def check(batch):
        check_batch(batch, run_batch(interpreter, directory, batch, tmp_path_factory))

    check()
