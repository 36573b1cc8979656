"""The OBD-II path allocates nothing per frame or tick: replies through the
loop's listener, SYNC barriers, 10 Hz requests and status lines, run in the
MicroPython unix port under micropython.heap_lock()."""

from conftest import run_micropython
from keidrive.paths import firmware_dir

# blocks of (SYNC, reply) records 50 ms apart: discovery on the first, then
# polling; the last block runs with the heap locked
SCRIPT = r'''
import sys
sys.path.insert(0, sys.argv[1])
import micropython, gc
from keifw import app
class P:
    def __init__(self): self.n = 0
    def send(self, can_id, ext, buf, n): self.n += 1; return True
    def echo(self, buf, j): pass
    def state(self): return 0
port = P()
class Null:
    def write(self, b, n=None): return n
fw, cfg = app.build(cfg_obj={"obd": True, "vehicle": "kei_hybrid_660"}, port=port, out=Null())
import struct
def rec(buf, j, t, cid, flags, data):
    o = j * 24
    struct.pack_into("<QIBBH", buf, o, t, cid, flags, len(data), 0)
    for k in range(8): buf[o + 16 + k] = data[k] if k < len(data) else 0
N = 64
buf = bytearray(24 * N)
sup = bytes([0x06, 0x41, 0x00, 0xBE, 0x3F, 0xA8, 0x13])
def block(t0, data):
    # SYNC, reply, SYNC ... one block
    j = 0
    t = t0
    for k in range(N // 2):
        rec(buf, j, t, 3, 0x80, b""); j += 1
        rec(buf, j, t + 20000, 0x7E8, 0, data); j += 1
        t += 50000
    return t
t = block(0, sup)
fw.records(buf, N, True)   # warm up: discovery, first allocations
t = block(t, bytes([0x06, 0x41, 0x0D, 50, 0x10, 0x00, 0x40]))  # speed and MAF, the method the map offers
fw.records(buf, N, True)
t = block(t, bytes([0x06, 0x41, 0x0D, 50, 0x10, 0x00, 0x40]))
gc.collect()
before = gc.mem_free()
micropython.heap_lock()
err = None
try:
    fw.records(buf, N, True)
except MemoryError as e:
    err = e
micropython.heap_unlock()
ok = "no allocation" if err is None else "ALLOCATED"
if err is not None:
    sys.print_exception(err)
print(ok, "phase", fw.obd.phase, "method", fw.obd.method, "requests", fw.obd.requests, "responses", fw.obd.responses, "sent", port.n)
'''


def test_obd_replies_ticks_and_requests_allocate_nothing():
    out = run_micropython(SCRIPT, str(firmware_dir()))
    assert out.startswith("no allocation"), out
    assert "phase 4 method 2" in out  # polling, on MAF from the map it was given
