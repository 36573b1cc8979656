"""MachineCANPort.read: frames from machine.CAN's recv(list) as stream records.

The controller here is a stand-in with recv(list) as MicroPython v1.28
documents it (id, a memoryview of the data, flags, errors; the list filled
in place): what the port does with what the controller hands it, on the
MicroPython unix port (nothing allocated, under heap_lock) and on CPython.
"""

import json

from keidrive.paths import firmware_dir

SCRIPT = r"""
import sys, json
sys.path.insert(0, sys.argv[1])
import keifw.compat  # CPython: the micropython stand-in first
import micropython
from keifw.canport import MachineCANPort
from keifw.vehicles import kei_turbo_660 as gen

class Controller:
    FLAG_RTR = 1
    FLAG_EXT_ID = 2

    def __init__(self, frames):
        self.frames = frames
        self.at = 0
        self.data = bytearray(8)
        self.filters = None

    def set_filters(self, filters):
        self.filters = filters

    def recv(self, r):
        if self.at == len(self.frames):
            return None
        ident, flags, errors, payload = self.frames[self.at]
        self.at += 1
        for k in range(len(payload)):
            self.data[k] = payload[k]
        r[0] = ident
        r[1] = memoryview(self.data)[:len(payload)] if MAKE_VIEWS else r[1]
        r[2] = flags
        r[3] = errors
        return r

MAKE_VIEWS = True
frames = [(0x130, 0, 0, bytes(range(8))), (0x18FEF117, 2, 0, b"\x11\x22\x33"), (0x1A0, 1, 0, b""),
          (0x140, 0, 1, b"\xAA" * 8)] + [(0x150, 0, 0, bytes([k]) * 8) for k in range(40)]
can = Controller(frames)
port = MachineCANPort(gen, can=can)
block = bytearray(24 * 32)
n1 = port.read(block)
first = [bytes(block[o:o + 24]).hex() for o in range(0, 4 * 24, 24)]
# under heap_lock: views made beforehand, as a real recv resizes the list's view in place
MAKE_VIEWS = False
can.frames = [(0x150, 0, 0, bytes(8))] * 100
can.at = 0
port.rx[1] = memoryview(can.data)
n = total = 0
if hasattr(micropython, "heap_lock"):
    micropython.heap_lock()
for _ in range(5):
    n = port.read(block)
    total += n
if hasattr(micropython, "heap_lock"):
    micropython.heap_unlock()
print(json.dumps({"n1": n1, "first": first, "overruns": port.overruns, "filters": len(can.filters), "total": total}))
"""


def test_machine_can_port_reads_blocks_of_records_and_allocates_nothing(interpreter):
    out = json.loads(interpreter(SCRIPT, str(firmware_dir())).strip().splitlines()[-1])
    assert out["n1"] == 32  # a block's worth, the rest waits in the controller
    standard, extended, remote, lost = (bytes.fromhex(r) for r in out["first"])
    assert standard[8:12] == (0x130).to_bytes(4, "little") and standard[12] == 0 and standard[13] == 8
    assert standard[16:24] == bytes(range(8))
    # 29-bit id, the record's extended flag; data past the DLC zeroed
    assert extended[8:12] == (0x18FEF117).to_bytes(4, "little") and extended[12] == 1 and extended[13] == 3
    assert extended[16:24] == b"\x11\x22\x33" + bytes(5)
    assert remote[12] == 2 and remote[13] == 0  # FLAG_RTR: the record's remote flag
    assert lost[8:12] == (0x140).to_bytes(4, "little")
    assert out["overruns"] == 1  # the frame whose errors field said the controller lost some
    assert out["filters"] > 0  # the vehicle's acceptance filters went to the controller
    assert out["total"] == 32 * 3 + 4  # 100 frames in 32-frame blocks, nothing allocated
