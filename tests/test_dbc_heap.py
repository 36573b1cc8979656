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
