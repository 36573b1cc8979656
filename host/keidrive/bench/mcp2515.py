"""What the MCP2515 driver costs on a Cortex-M, and the frame rate a board can drain.

``instr_per_frame_mcp2515`` runs the driver (firmware/keifw/mcp2515.py, from
source over mpremote's mount) on MicroPython's qemu image (MPS2-AN385,
Cortex-M3) with a simulated SPI bus: Python objects that answer the way an
MCP2515 with a frame in RXB0 does, instantly. With ``-icount shift=0`` the
emulator runs 1000 instructions per microsecond of ``time.ticks_us()``, so
instructions per frame are counted, not timed. The simulated bus's own
instructions are measured alone and taken off (the SPI calls of a real
board run in C instead).

The drain rates are an estimate from that count; the assumptions are in
``ASSUMPTIONS`` and printed with the figures.
"""

from __future__ import annotations

from pathlib import Path

FRAMES = 2000

# Runs on the qemu board; /remote is the host's firmware folder.
SCRIPT = r"""
import sys, time
sys.path.append('/remote')
from keifw import mcp2515 as D

class Gen:  # the driver needs only the hardware filter tables
    MCP2515_MASKS = ((0x7FF, 0), (0x7FF, 0))
    MCP2515_FILTERS = ((0x130, 0),)

class InitBus:  # answers the init: CANSTAT shows the mode last written to CANCTRL
    def __init__(self): self.mode = 0x80
    def write(self, b):
        if b[0] == 0x02 and b[1] == 0x0F: self.mode = b[2]
    def write_readinto(self, t, r):
        if t[0] == 0x03:  # READ
            r[2] = self.mode

class Bus:  # READ STATUS: a frame in RXB0; READ RX BUFFER leaves the ring slot as it is
    def write(self, b): pass
    def write_readinto(self, t, r):
        if t[0] == 0xA0:
            r[1] = 1

class Int:  # low, then high twice (the drain's last look, and its look after letting go of the bus): one frame per read
    def __init__(self): self.k = 0
    def value(self, x=None):
        self.k += 1
        if self.k == 3:
            self.k = 0
        return 0 if self.k == 1 else 1
    def irq(self, handler=None, trigger=0, hard=False): pass

class Cs:
    def value(self, x=None): pass

D.sleep_us = lambda us: None
port = D.MCP2515Port(InitBus(), Cs(), Int(), Gen())
for k in range(D.RING):  # every ring slot holds a standard frame 0x130, DLC 8
    s = port.slots[k]; s[1] = 0x130 >> 3; s[2] = (0x130 & 7) << 5; s[5] = 8
port.spi = Bus()
port.int_pin.k = 0
block = bytearray(24 * 32)
N = %d
read = port.read
t0 = time.ticks_us()
for _ in range(N):
    read(block)
t1 = time.ticks_us()
# the simulated parts alone, called as often as the driver calls them per frame
bus = port.spi; pin = port.int_pin; cs = port.cs
st = port.st; cmd_status = port.cmd_status; slot = port.slots[0]; cmd = port.cmd_rxb0
t2 = time.ticks_us()
for _ in range(N):
    pin.value(); cs.value(0); bus.write_readinto(cmd_status, st); cs.value(1)
    cs.value(0); bus.write_readinto(cmd, slot); cs.value(1); pin.value(); pin.value()
t3 = time.ticks_us()
print('frames', N, 'driver_us', time.ticks_diff(t1, t0), 'simulated_us', time.ticks_diff(t3, t2), 'got', port.frames)
"""

# Bytes on the SPI bus per frame: READ STATUS (2) and READ RX BUFFER (14).
SPI_BYTES_PER_FRAME = 16

ASSUMPTIONS = (
    "the Cortex-M3 instruction count holds for the RP2040's Cortex-M0+ and the ESP32's Xtensa LX6 "
    "(the M0+ has no Thumb-2, so it needs more instructions: the RP2040 figure is optimistic)",
    "one instruction per clock (no flash cache misses: both run MicroPython from XIP flash)",
    "SPI at 8 MHz (the config default; the MCP2515 takes up to 10 MHz): 16 bytes = 16 us per frame",
    "each of the 2 machine.SPI transfers costs 5 us of call overhead in C beyond its bytes",
    "nothing else runs: the highest rate the driver alone can drain, before decoding",
)

CLOCKS_HZ = {"rp2040": 125_000_000, "esp32": 240_000_000}
SPI_HZ = 8_000_000
SPI_CALL_US = 5.0


def drain_rates(instr_per_frame: float) -> dict:
    """Frames per second each board could move out of the chip, from the instruction count."""
    spi_us = SPI_BYTES_PER_FRAME * 8 * 1e6 / SPI_HZ + 2 * SPI_CALL_US
    return {f"max_frames_per_s_{board}": round(1e6 / (instr_per_frame * 1e6 / hz + spi_us))
            for board, hz in CLOCKS_HZ.items()}


def parse(line: str) -> dict:
    from ..errors import KeidriveError

    words = line.split()
    try:
        values = dict(zip(words[0::2], (int(w) for w in words[1::2])))
        n, driver_us, simulated_us = values["frames"], values["driver_us"], values["simulated_us"]
    except (KeyError, ValueError):
        raise KeidriveError(f"the MCP2515 cost script printed {line!r}") from None
    if values.get("got") != n:
        raise KeidriveError(f"the MCP2515 cost script read {values.get('got')} frames of {n}")
    total = driver_us * 1000 / n
    simulated = simulated_us * 1000 / n
    return {"instr_per_frame_mcp2515": round(total - simulated), "instr_per_frame_with_simulated_spi": round(total),
            "instr_per_frame_simulated_spi": round(simulated)}


def measure(image: str | Path, firmware: str | Path | None = None) -> dict:
    """Boot the qemu image, run the script, return the figures and the drain rates."""
    from ..paths import firmware_dir
    from ..target.qemu import Machine, Session

    with Machine(image) as machine:
        session = Session(machine, mount=firmware or firmware_dir())
        out = session.run(SCRIPT % FRAMES, timeout=300).decode(errors="replace")
    line = next((x for x in out.splitlines() if x.startswith("frames ")), out.strip())
    figures = parse(line)
    figures.update(drain_rates(figures["instr_per_frame_mcp2515"]))
    return figures
