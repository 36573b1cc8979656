"""Generated encoders -> cantools decode gives back the raw values, COUNTER and CHECKSUM included."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keidrive.dbccompiler import exec_generated
from keidrive.dbccompiler.checksum import ALGORITHMS

# Reads "index:slot=raw,slot=raw..." tokens; stores raw values (splitting
# limbs), encodes, prints [frame hex, counter slot value after encode].
ENCODE_SCRIPT = """
import sys, json
sys.path.insert(0, sys.argv[1])
import gen as m
values = m.new_values()
buf = bytearray(8)
for token in open(sys.argv[2]).read().split():
    index, assignments = token.split(":")
    index = int(index)
    for assignment in assignments.split(","):
        slot, raw = assignment.split("=")
        slot, raw = int(slot), int(raw)
        limbs = m.SLOT_LIMBS[slot]
        if limbs == 1:
            values[slot] = raw
        else:
            for k in range(limbs):
                values[slot + k] = (raw >> (16 * k)) & 0xFFFF
    length = m.encode(index, values, buf)
    counter = m.MSG_COUNTER_SLOT[index]
    print(json.dumps([bytes(buf[:length]).hex(), values[counter] if counter >= 0 else None]))
"""


def _raw_range(signal):
    if signal.is_signed:
        return st.integers(-(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1)
    return st.integers(0, (1 << signal.length) - 1)


def _module_slots(directory):
    return exec_generated((directory / "gen.py").read_text())


@st.composite
def messages_values(draw, messages):
    batch = []
    for index, message in enumerate(messages):
        for _ in range(6):
            signals = [s for s in message.signals if s.multiplexer_ids is None]
            if message.is_multiplexed():
                mux = next(s for s in message.signals if s.is_multiplexer)
                page = draw(st.sampled_from(sorted({i for s in message.signals for i in s.multiplexer_ids or ()})))
                signals = [s for s in signals if s is not mux]
                signals += [s for s in message.signals if page in (s.multiplexer_ids or ())]
                values = {mux.name: page}
            else:
                values = {}
            values.update({s.name: draw(_raw_range(s)) for s in signals})
            batch.append((index, message, values))
    return batch


def test_encode_round_trips_through_cantools(compiled_set, interpreter, tmp_path_factory):
    database, directory = compiled_set
    module = _module_slots(directory)
    messages = [database.get_message_by_name(name) for name in module["MSG_NAMES"]]

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    @given(messages_values(messages))
    def check(batch):
        lines = []
        for index, message, values in batch:
            slots = ",".join(f"{module['SLOT'][message.name + '.' + name]}={raw}" for name, raw in values.items())
            lines.append(f"{index}:{slots}")
        token_file = tmp_path_factory.mktemp("values") / "values.txt"
        token_file.write_text(" ".join(lines))
        output = interpreter(ENCODE_SCRIPT, str(directory), str(token_file)).splitlines()
        assert len(output) == len(batch)
        for (index, message, values), line in zip(batch, output):
            frame_hex, counter_after = json.loads(line)
            frame = bytes.fromhex(frame_hex)
            decoded = message.decode(frame, decode_choices=False, scaling=False)
            checksum_byte = module["MSG_CHECKSUM_BYTE"][index]
            counter_slot = module["MSG_COUNTER_SLOT"][index]
            for name, raw in values.items():
                if checksum_byte >= 0 and name == module["SLOT_SIGNAL"][module["MSG_CHECKSUM_SLOT"][index]]:
                    continue
                assert decoded[name] == raw, (message.name, name)
            if counter_slot >= 0:
                sent = values[module["SLOT_SIGNAL"][counter_slot]]
                assert counter_after == (sent + 1) % (1 << module["MSG_COUNTER_BITS"][index])
            if checksum_byte >= 0:
                algorithm = next(a for a in ALGORITHMS.values())
                assert frame[checksum_byte] == algorithm.compute(frame, checksum_byte), message.name

    check()
