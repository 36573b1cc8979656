"""The hot path allocates nothing: every message decoded and encoded under heap_lock()."""

HEAP_SCRIPT = """
import sys, micropython
sys.path.insert(0, sys.argv[1])
import gen as m
values = m.new_values()
frames = [(m.frame_key(m.MSG_IDS[i], m.MSG_EXTENDED[i]), bytes(range(i, i + m.MSG_LEN[i])), m.MSG_LEN[i])
          for i in range(m.N_MESSAGES)]
buf = bytearray(8)
view = memoryview(buf)
results = [0] * m.N_MESSAGES


def hot_path():
    # A function: module-level names would allocate on first assignment.
    for _ in range(3):
        for i in range(m.N_MESSAGES):
            key, data, dlc = frames[i]
            got = m.dispatch(key, data, dlc, values)
            if got != i or m.dispatch(key, data, dlc + 1, values) != -2 or m.dispatch(0x7FF0000, data, dlc, values) != -1:
                results[i] = 1
            if m.MSG_TX[i]:
                m.encode(i, values, buf)
                m.dispatch(key, view, dlc, values)
            if m.MSG_CHECKSUM_BYTE[i] >= 0:
                m.checksum_ok(i, data)


micropython.heap_lock()
hot_path()
micropython.heap_unlock()
print(sum(results), m.N_MESSAGES)
"""


def test_hot_path_runs_under_heap_lock(compiled_set):
    from conftest import run_micropython

    _, directory = compiled_set
    wrong, n_messages = map(int, run_micropython(HEAP_SCRIPT, str(directory)).split())
    assert n_messages > 0
    assert wrong == 0


DECODE_AT_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import gen as m
import micropython  # on CPython: keifw's stand-in, without heap_lock

if not hasattr(micropython, "heap_lock"):
    micropython = None
values = m.new_values()
expect = m.new_values()
n = m.N_MESSAGES
bufs = []
for i in range(n):
    rec = bytearray(24)  # a stream record: data at offset 16
    for k in range(m.MSG_LEN[i]):
        rec[16 + k] = (i * 37 + k * 11) & 0xFF
    if m.MSG_CHECKSUM_BYTE[i] >= 0:
        rec[16 + m.MSG_CHECKSUM_BYTE[i]] = m.checksum(i, memoryview(rec)[16:])
    bufs.append(rec)
results = [0] * n


def hot_path():
    for i in range(n):
        rec = bufs[i]
        if m.decode_at(i, rec, 16, values) != 0:
            results[i] += 1
        if m.MSG_CHECKSUM_BYTE[i] >= 0:
            rec[16 + m.MSG_CHECKSUM_BYTE[i]] ^= 1
            if m.decode_at(i, rec, 16, values) != -1:
                results[i] += 2
            rec[16 + m.MSG_CHECKSUM_BYTE[i]] ^= 1
    if m.decode_at(n, bufs[0], 16, values) != -2:
        results[0] += 4


if micropython:
    micropython.heap_lock()
hot_path()
if micropython:
    micropython.heap_unlock()
for i in range(n):
    m.dispatch(m.frame_key(m.MSG_IDS[i], m.MSG_EXTENDED[i]), memoryview(bufs[i])[16:], m.MSG_LEN[i], expect)
print(sum(results), 1 if list(values) == list(expect) else 0, n)
"""


def test_decode_at_checks_and_decodes_like_dispatch(compiled_set):
    """decode_at (the firmware's one call per frame): CHECKSUM mismatch -> -1, nothing decoded;
    else the same values as dispatch; allocation-free in MicroPython; the same in CPython."""
    from conftest import run_cpython, run_micropython

    _, directory = compiled_set
    for run in (run_micropython, run_cpython):
        wrong, same, n_messages = map(int, run(DECODE_AT_SCRIPT, str(directory)).split())
        assert n_messages > 0
        assert wrong == 0, run.__name__
        assert same == 1, run.__name__
