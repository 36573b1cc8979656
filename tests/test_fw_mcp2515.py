"""The MCP2515 driver against a register-level model of the chip's SPI protocol.

There is no MCP2515 here: MCP2515Model (below, in the test) implements the
instructions the driver uses (RESET, READ, WRITE, READ RX BUFFER, LOAD TX
BUFFER, RTS, BIT MODIFY) over a 128-byte register file, with the acceptance
filter logic of the datasheet, and drives the INT pin. The test runs in the
real MicroPython unix port.
"""

import shutil
import subprocess

import pytest

from keidrive.paths import firmware_dir

MP = shutil.which("micropython")
pytestmark = pytest.mark.skipif(MP is None, reason="needs the MicroPython unix port")

SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from keifw.mcp2515 import MCP2515Port, FILTER_ADDR, MASK_ADDR
from keifw.canport import Frame
from keifw.vehicles import kei_hybrid_660 as gen
import micropython

class Pin:
    def __init__(self, v=1): self.v = v
    def value(self, x=None):
        if x is None: return self.v
        self.v = x

class Model:
    def __init__(self):
        self.reg = bytearray(128); self.reg[0x0F] = 0x87; self.reg[0x0E] = 0x80
        self.rxq = []; self.sent = []; self.int = Pin(1)
    def _id(self, a):
        r = self.reg
        if r[a + 1] & 0x08:
            return ((r[a] << 21) | ((r[a + 1] & 0xE0) << 13) | ((r[a + 1] & 3) << 16) | (r[a + 2] << 8) | r[a + 3]), True
        return (r[a] << 3) | (r[a + 1] >> 5), False
    def accepts(self, fid, ext):
        # RXB0: RXM0 with RXF0-1, RXB1: RXM1 with RXF2-5; a standard frame is
        # matched against the SID bits of mask and filter only
        for k, m in ((0, 0), (1, 0), (2, 1), (3, 1), (4, 1), (5, 1)):
            fa = FILTER_ADDR[k]
            ma = MASK_ADDR[m]
            fext = bool(self.reg[fa + 1] & 0x08)
            if fext != ext:
                continue
            if ext:
                mv = self._mask_ext(ma)
                fv = self._mask_ext(fa)
            else:
                mv = (self.reg[ma] << 3) | (self.reg[ma + 1] >> 5)
                fv = (self.reg[fa] << 3) | (self.reg[fa + 1] >> 5)
            if (fid & mv) == (fv & mv):
                return True
        return False
    def _mask_ext(self, a):
        r = self.reg
        return (r[a] << 21) | ((r[a + 1] & 0xE0) << 13) | ((r[a + 1] & 3) << 16) | (r[a + 2] << 8) | r[a + 3]
    def bus_frame(self, fid, ext, data):
        if not self.accepts(fid, ext):
            return False
        self.rxq.append((fid, ext, bytes(data)))
        self._load()
        return True
    def _load(self):
        if self.rxq and not self.reg[0x2C] & 1:
            fid, ext, data = self.rxq.pop(0)
            r = self.reg
            if ext:
                sid = fid >> 18; eid = fid & 0x3FFFF
                r[0x61] = sid >> 3; r[0x62] = ((sid & 7) << 5) | 8 | (eid >> 16); r[0x63] = (eid >> 8) & 255; r[0x64] = eid & 255
            else:
                r[0x61] = fid >> 3; r[0x62] = (fid & 7) << 5; r[0x63] = 0; r[0x64] = 0
            r[0x65] = len(data)
            for k in range(8): r[0x66 + k] = data[k] if k < len(data) else 0
            r[0x2C] |= 1
        self.int.v = 0 if self.reg[0x2C] & self.reg[0x2B] & 3 else 1
    def transfer(self, tx, rx):
        op = tx[0]
        if op == 0xC0:
            self.reg[0x0F] = 0x87
        elif op == 0x02:
            for k in range(2, len(tx)): self.reg[(tx[1] + k - 2) & 127] = tx[k]
        elif op == 0x03:
            for k in range(2, len(tx)): rx[k] = self.reg[(tx[1] + k - 2) & 127]
        elif op in (0x90, 0x94):
            base = 0x61 if op == 0x90 else 0x71
            for k in range(1, len(tx)): rx[k] = self.reg[base + k - 1]
            self.reg[0x2C] &= ~(1 if op == 0x90 else 2)
            self._load()
        elif op == 0x40:
            for k in range(1, len(tx)): self.reg[0x31 + k - 1] = tx[k]
        elif op == 0x81:
            self.sent.append(bytes(self.reg[0x31:0x31 + 13]))
        else:
            raise ValueError("unexpected instruction %x" % op)

class SPI:
    def __init__(self, m): self.m = m; self.dummy = bytearray(16)
    def write(self, b): self.m.transfer(b, self.dummy)
    def write_readinto(self, t, r): self.m.transfer(t, r)

m = Model()
port = MCP2515Port(SPI(m), Pin(1), m.int, gen, osc_mhz=8, bitrate=500000, transmit=False)
print("mode", hex(m.reg[0x0F]), "cnf", m.reg[0x2A], m.reg[0x29], m.reg[0x28])
fr = Frame()
print("empty", port.poll(fr))
# every id the vehicle module decodes passes the hardware filters
for i in range(gen.N_MESSAGES):
    if not gen.MSG_TX[i]:
        ok = m.bus_frame(gen.MSG_IDS[i], gen.MSG_EXTENDED[i], bytes(range(8)))
        assert ok, gen.MSG_NAMES[i]
        assert port.poll(fr)
        assert gen.MSG_KEY[fr.key] == i and fr.dlc == 8 and bytes(fr.data) == bytes(range(8)), gen.MSG_NAMES[i]
print("rx ok")
print("foreign", m.bus_frame(0x7DF, False, b"\x02\x01\x0c"))
# polling allocates nothing
m.bus_frame(0x130, False, bytes(8))
class FastSPI:  # pre-filled response, so only the driver runs under the lock
    def __init__(self, resp): self.resp = resp
    def write(self, b): pass
    def write_readinto(self, t, r):
        for k in range(len(r)): r[k] = self.resp[k] if t[0] != 0x03 else 1
resp = bytearray(14); resp[1] = 0x130 >> 3; resp[2] = (0x130 & 7) << 5; resp[5] = 8
port.spi = FastSPI(resp); m.int.v = 0
micropython.heap_lock()
got = port.poll(fr)
micropython.heap_unlock()
port.spi = SPI(m); m.int.v = 1
print("locked", got, hex(fr.key))
print("send listen-only", port.send(0x6E0, False, bytearray(8), 8), len(m.sent))
port2 = MCP2515Port(SPI(m), Pin(1), m.int, gen, transmit=True)
print("send normal", port2.send(0x6E0, False, bytearray(b"\x01\x02\x03\x04\x05\x06\x07\x08"), 8), m.sent[-1][:6].hex())
print("state", port.state())
m.reg[0x2D] = 0x20
print("busoff", port.state()); port.restart(); print("after", port.state(), hex(m.reg[0x0F]))
"""


def test_mcp2515_driver_against_register_model(tmp_path):
    script = tmp_path / "mcp.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([MP, str(script), str(firmware_dir())], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "mode 0x60 cnf 0 144 2"  # listen-only, 500 kbit/s at 8 MHz
    assert out[1] == "empty False"
    assert out[2] == "rx ok"
    assert out[3] == "foreign False"  # filtered out in hardware
    assert out[4] == "locked True 0x130"
    assert out[5] == "send listen-only False 0"
    assert out[6] == "send normal True dc0000000801"  # SIDH/SIDL of 0x6E0, DLC 8, data[0]
    assert out[7:] == ["state 0", "busoff 3", "after 0 0x60"]
