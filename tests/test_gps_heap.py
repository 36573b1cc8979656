"""The GPS path allocates nothing: UART records among the frames, sentences
good and garbled, the 10 Hz tick, a jurisdiction change, the rule put into
the warnings, its line, and the hold running out, all under
micropython.heap_lock() (the 32-bit unix port when KEIDRIVE_MICROPYTHON
points at it, as in CI's second pass); and a board's plain UART bytes."""

import numpy as np
from conftest import micropython_or_skip, run_micropython
from gps_helpers import LOCKED_FEED, across_the_line
from keidrive.paths import firmware_dir

micropython_or_skip()

LOCK_FROM_US = 20_000_000

SCRIPT = r'''
import sys
sys.path.insert(0, sys.argv[1])
import gc, micropython
from keifw import app
class Null:
    def write(self, b, n=None): return n
fw, cfg = app.build(cfg_obj={"vehicle": "kei_turbo_660", "profile": "us-interstate", "gps": True}, out=Null())
g = fw.gps
f = open(sys.argv[2], "rb")
buf = bytearray(256 * 24)
warm = int(sys.argv[3])
for _ in range(warm):
    fw.records(buf, f.readinto(buf) // 24, True)
before = (g.changes, g.region, g.reader.st[4])
''' + LOCKED_FEED + r'''print("no allocation" if err is None else "ALLOCATED", before, g.changes, g.region, g.reason,
      g.reader.st[3] + g.reader.st[4], g.reading[1])
'''


def _stream(tmp_path):
    records = across_the_line()
    (tmp_path / "stream.bin").write_bytes(records.tobytes())
    return int(np.searchsorted(records["timestamp_us"], LOCK_FROM_US)) // 256 + 1


def test_the_gps_path_allocates_nothing(tmp_path):
    warm = _stream(tmp_path)
    out = run_micropython(SCRIPT, str(firmware_dir()), str(tmp_path / "stream.bin"), str(warm), timeout=300)
    words = out.split()
    assert words[0] == "no", out
    # before the lock: Tennessee (region 43); locked: Alabama (1), the hold
    # running out (no region), Alabama again when the fixes are back; the
    # three broken pieces counted (bad checksum, garbled)
    assert out.startswith("no allocation (1, 43, 0) 4 1 0 3 1"), out


BOARD_SCRIPT = r'''
import sys
sys.path.insert(0, sys.argv[1])
import gc, micropython
from keifw import nmea
r = nmea.Reader()
data = open(sys.argv[2], "rb").read()
r.feed(data, 0, 400, 1000)
err = None
t = 1000
k = 400
e = 0
gc.collect()
micropython.heap_lock()
try:
    while k < len(data):
        e = min(len(data), k + 37)  # a UART read: any number of bytes
        t = (t + 3000) & 0x3FFFFFFF
        r.feed(data, k, e, t)
        k = e
except MemoryError as e:
    err = e
micropython.heap_unlock()
print("no allocation" if err is None else "ALLOCATED", r.st[2], r.fx[3], r.fx[7])
'''


def test_a_boards_uart_bytes_allocate_nothing(tmp_path):
    from gps_helpers import Epochs

    epochs = Epochs(4)
    data = b"".join(epochs.gga() + epochs.rmc() + epochs.vtg() for _ in range(200))
    (tmp_path / "nmea.bin").write_bytes(data)
    out = run_micropython(BOARD_SCRIPT, str(firmware_dir()), str(tmp_path / "nmea.bin"), timeout=120)
    assert out.startswith("no allocation 600 400 400"), out  # 200 epochs: every GGA and RMC moved the position
