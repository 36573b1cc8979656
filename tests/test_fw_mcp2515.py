"""The MCP2515 driver against the register-level chip model (the virtual boards' chip).

There is no MCP2515 here: the model (keidrive/board/vboard/kd_mcp2515.py, the
same chip the virtual boards carry) is written from the datasheet
(DS20001801) in this repository, so these tests check the driver against our
reading of the datasheet, not against silicon. Driver and model run together
in the real MicroPython unix port ($KEIDRIVE_MICROPYTHON selects another
build, e.g. the 32-bit one).
"""

import json
import subprocess
from pathlib import Path

import keidrive.board
from conftest import micropython_or_skip
from keidrive.paths import firmware_dir

VBOARD = Path(keidrive.board.__file__).resolve().parent / "vboard"

MP = micropython_or_skip()

HEADER = r"""
import sys, json
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import kd_mcp2515 as M
from keifw import mcp2515 as D
from keifw.vehicles import kei_turbo_660 as gen

def make(transmit=False, osc=8, bitrate=500000, build=True, **kw):
    chip = M.Chip(osc_hz=osc * 1000000, bitrate=bitrate, **kw)
    D.now_us = chip.now_us  # the driver's clock and waits run on the model's time
    D.sleep_us = chip.sleep_us
    if not build:
        return chip, None
    return chip, D.MCP2515Port(chip.spi, chip.cs, chip.int, gen, osc, bitrate, transmit)

def drain_all(port):
    # (key, flags, dlc, data) of every frame read() hands over as stream records
    block = bytearray(24 * 64)
    got = []
    while True:
        n = port.read(block)
        if not n:
            return got
        for j in range(n):
            o = j * 24
            key = block[o + 8] | (block[o + 9] << 8) | (block[o + 10] << 16) | (block[o + 11] << 24)
            flags, dlc = block[o + 12], block[o + 13]
            got.append((key | (0x20000000 if flags & 1 else 0), flags, dlc, bytes(block[o + 16:o + 16 + dlc])))

def out(**kw):
    print(json.dumps(kw))
"""


def run(body: str, timeout: float = 60) -> dict:
    proc = subprocess.run([MP, "-c", HEADER + body, str(firmware_dir()), str(VBOARD)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mcp2515_init_waits_after_reset_and_verifies_listen_only_mode():
    r = run(r"""
chip, port = make()
rate, sp = chip.bitrate_from_cnf()
out(opmod=chip.opmod(), canctrl=chip.reg[0x0F], rate=rate, sp=sp, stated=port.sample_permille,
    inte=chip.reg[0x2B], bukt=chip.reg[0x60] & 4, t_us=chip.now // 1000)
""")
    assert r["opmod"] == 3  # listen-only: acknowledges nothing on the car's bus
    assert r["rate"] == 500000 and r["sp"] == r["stated"] == 750  # 8 MHz allows 8 TQ: 6/8
    assert r["inte"] == 0x23  # RX0IE | RX1IE | ERRIE
    assert r["bukt"] == 4
    assert r["t_us"] >= 2000  # the reset wait ran on the chip's clock


def test_mcp2515_bit_timing_matches_the_datasheet_formula_for_every_crystal():
    r = run(r"""
res = []
for osc in (8, 16, 20):
    for rate in (125000, 250000, 500000, 1000000):
        try:
            c = D.bit_timing(osc * 1000000, rate)
        except ValueError:
            res.append([osc, rate, None, None, None])
            continue
        chip = M.Chip(osc_hz=osc * 1000000, bitrate=rate)
        chip.reg[0x2A], chip.reg[0x29], chip.reg[0x28] = c[0], c[1], c[2]
        got, sp = chip.bitrate_from_cnf()
        res.append([osc, rate, got, sp, c[3]])
out(res=res)
""")
    table = {(o, b): (got, sp, stated) for o, b, got, sp, stated in r["res"]}
    for (osc, rate), (got, sp, stated) in table.items():
        if osc == 8 and rate == 1000000:
            assert got is None  # 4 TQ per bit: below the datasheet's minimum of 5
            continue
        assert got == rate, (osc, rate)
        assert sp == stated, (osc, rate)
        assert 700 <= sp <= 875, (osc, rate, sp)
    assert table[(16, 500000)][1] == 875 and table[(8, 500000)][1] == 750


def test_mcp2515_a_chip_that_does_not_answer_is_one_clear_error():
    r = run(r"""
chip, _ = make(build=False)
chip.dead = True
try:
    D.MCP2515Port(chip.spi, chip.cs, chip.int, gen)
    out(error=None)
except D.MCP2515Error as e:
    out(error=str(e), t_us=chip.now // 1000)
""")
    assert "CANSTAT reads 0xff" in r["error"] and "wiring" in r["error"]
    assert 20000 <= r["t_us"] < 60000  # gave up after the mode timeout, not at once, not never


def test_mcp2515_a_mode_change_that_never_completes_times_out():
    r = run(r"""
chip, _ = make(build=False)
chip.stuck_mode = True  # REQOP written, OPMOD never follows
try:
    D.MCP2515Port(chip.spi, chip.cs, chip.int, gen)
    out(error=None)
except D.MCP2515Error as e:
    out(error=str(e), opmod=chip.opmod())
""")
    assert r["error"].startswith("MCP2515 not in mode 0x60")
    assert r["opmod"] == 4  # still in configuration mode


def test_mcp2515_hardware_filters_pass_every_dbc_id_and_drop_foreign_ones():
    r = run(r"""
chip, port = make()
bad = []
for i in range(gen.N_MESSAGES):
    if gen.MSG_TX[i]:
        continue
    chip.bus_frame(gen.MSG_IDS[i], gen.MSG_EXTENDED[i], bytes(range(8)))
    got = drain_all(port)
    if len(got) != 1 or gen.MSG_KEY[got[0][0]] != i or got[0][3] != bytes(range(8)):
        bad.append(gen.MSG_NAMES[i])
for fid in (0x7DF, 0x7E8, 0x000, 0x555):
    chip.bus_frame(fid, False, b"\x02\x01\x0c")
out(bad=bad, foreign=len(drain_all(port)), filtered=chip.filtered)
""")
    assert r["bad"] == []
    assert r["foreign"] == 0 and r["filtered"] == 4


def test_mcp2515_rxf0_1_fill_rxb0_and_rxf2_5_fill_rxb1():
    r = run(r"""
chip, port = make()
# the generated filters: RXF0 = 0x130, RXF1 = 0x1a4 (RXM0); RXF2.. (RXM1)
chip.bus_frame(0x130, False, bytes(8))
chip.bus_frame(0x1A0, False, bytes(8))
rxb0 = (chip.reg[0x61] << 3) | (chip.reg[0x62] >> 5)
rxb1 = (chip.reg[0x71] << 3) | (chip.reg[0x72] >> 5)
out(flags=chip.reg[0x2C] & 3, rxb0=rxb0, rxb1=rxb1, filhit1=chip.reg[0x70] & 7, got=[g[0] for g in drain_all(port)])
""")
    assert r["flags"] == 3
    assert r["rxb0"] == 0x130 and r["rxb1"] == 0x1A0
    assert r["filhit1"] >= 2  # a direct RXF2-5 hit, not a rollover
    assert r["got"] == [0x130, 0x1A0]


def test_mcp2515_rollover_keeps_arrival_order():
    r = run(r"""
chip, port = make()
chip.bus_frame(0x130, False, b"\x01" * 8)
chip.bus_frame(0x130, False, b"\x02" * 8)  # RXB0 full: rolls over into RXB1
out(filhit1=chip.reg[0x70] & 7, flags=chip.reg[0x2C] & 3, lost=chip.lost,
    got=[g[3][0] for g in drain_all(port)], overruns=port.overruns)
""")
    assert r["flags"] == 3 and r["filhit1"] == 0  # RXB1 holds an RXF0 hit: the rollover
    assert r["got"] == [1, 2] and r["lost"] == 0 and r["overruns"] == 0


def test_mcp2515_overrun_is_counted_and_cleared():
    r = run(r"""
chip, port = make()
for k in range(3):
    chip.bus_frame(0x130, False, bytes([k + 1]) * 8)  # the third finds both buffers full
eflg_before = chip.reg[0x2D]
got = [g[3][0] for g in drain_all(port)]
out(eflg_before=eflg_before, eflg_after=chip.reg[0x2D], errif=chip.reg[0x2C] & 0x20, got=got,
    overruns=port.overruns, lost=chip.lost, int_pin=chip.int.value())
""")
    assert r["eflg_before"] & 0xC0 and r["lost"] == 1
    assert r["got"] == [1, 2]  # the two the chip kept, oldest first
    assert r["overruns"] == 1
    assert r["eflg_after"] == 0 and r["errif"] == 0 and r["int_pin"] == 1  # flags cleared: INT released


def test_mcp2515_model_keeps_eflg_error_bits_read_only():
    r = run(r"""
chip, port = make()
chip.tx_errors(40)  # TEC 320: bus-off
before = chip.reg[0x2D]
port.write_reg(D.EFLG, 0)
port.bit_modify(D.EFLG, 0xFF, 0)
out(before=before, after=chip.reg[0x2D], tec=chip.reg[0x1C])
""")
    assert r["before"] & 0x20 and r["after"] & 0x20  # TXBO stays set: only the chip clears it
    assert r["tec"] == 255


def test_mcp2515_error_counters_and_states():
    r = run(r"""
chip, port = make()
states = [port.state()]
chip.rx_errors(96); states.append(port.state())
chip.rx_errors(32); states.append(port.state())
out(states=states, tec=port.tec, rec=port.rec, eflg=port.eflg)
""")
    assert r["states"] == [0, 1, 2]  # active, warning (96), passive (128)
    assert r["rec"] == 128 and r["tec"] == 0
    assert r["eflg"] & 0x08  # RXEP


def test_mcp2515_bus_off_restarts_with_back_off():
    r = run(r"""
chip, port = make(transmit=True)
chip.fail_tx = True
chip.tx_errors(33)
restarts = []
for tick in range(40):  # 4 s of the firmware's 10 Hz tick
    if port.state() == 3:
        n = port.restarts
        port.restart()
        if port.restarts > n:
            restarts.append(chip.now // 1000000)
        chip.tx_errors(33)  # the fault is still there: bus-off again
    chip.busy(100000000)
out(restarts=restarts)
""")
    gaps = [b - a for a, b in zip(r["restarts"], r["restarts"][1:])]
    assert len(r["restarts"]) >= 4
    assert gaps[:4] == [100, 200, 400, 800] or all(g >= 100 for g in gaps)
    for k, g in enumerate(gaps):
        assert min(100 * 2 ** k, 5000) <= g <= min(100 * 2 ** k, 5000) + 110


def test_mcp2515_bus_off_ends_by_itself_after_128_frame_ends():
    r = run(r"""
chip, port = make(transmit=True)
chip.tx_errors(33)
s0 = port.state()
for k in range(127):
    chip.bus_frame(0x7DF, False, bytes(8))
s1 = port.state()
chip.bus_frame(0x7DF, False, bytes(8))
out(s0=s0, s1=s1, s2=port.state(), restarts=port.restarts)
""")
    assert (r["s0"], r["s1"], r["s2"]) == (3, 3, 0) and r["restarts"] == 0


def test_mcp2515_listen_only_never_transmits_and_normal_mode_does():
    r = run(r"""
chip, port = make()
a = port.send(0x6E0, False, bytearray(8), 8)
chip2, port2 = make(transmit=True)
b = port2.send(0x6E0, False, bytearray(b"\x01\x02\x03\x04\x05\x06\x07\x08"), 8)
chip2.fail_tx = True
c = port2.send(0x6E0, False, bytearray(8), 8)   # loaded, but stays pending (no ACK)
d = port2.send(0x6E0, False, bytearray(8), 8)   # TXREQ still set: refused
out(a=a, sent=len(chip.sent), b=b, frame=chip2.sent[0][:6].hex(), c=c, d=d, opmod2=chip2.opmod())
""")
    assert r["a"] is False and r["sent"] == 0
    assert r["b"] is True and r["frame"] == "dc0000000801"  # SIDH/SIDL of 0x6E0, DLC 8, data[0]
    assert r["c"] is True and r["d"] is False
    assert r["opmod2"] == 0


def test_mcp2515_extended_and_remote_frames_decode():
    r = run(r"""
chip, port = make()
chip.reg[0x60] |= 0x60  # RXM = 11 on RXB0: the chip takes any frame, whatever the vehicle's filters
ext = 0x18FEFC17
chip.bus_frame(ext, True, bytes(range(8)))
g = drain_all(port)[0]
# a standard remote frame: SRR set in SIDL
chip.bus_frame(0x130, False, bytes(0)); chip.reg[0x62] |= 0x10
r2 = drain_all(port)[0]
out(ext=ext, key=g[0], flags=g[1], data=list(g[3]), rflags=r2[1], rdlc=r2[2])
""")
    assert r["key"] == r["ext"] | 0x20000000 and r["flags"] == 1 and r["data"] == list(range(8))
    assert r["rflags"] == 2 and r["rdlc"] == 0


def test_mcp2515_read_allocates_nothing():
    r = run(r"""
import micropython
class Bus:  # replays a recorded exchange: RX0IF, one frame; then ERRIF with an overrun once
    def __init__(self): self.n = 0
    def write(self, b): pass
    def write_readinto(self, t, r):
        if t[0] == 0xA0:
            r[1] = 1 if self.n % 2 == 0 else 0   # READ STATUS: RX0IF on every other look
        elif t[0] == 0x03:
            r[2] = 0x20; r[3] = 0x40 if self.n == 1 else 0   # CANINTF: ERRIF; EFLG: RX0OVR once
            self.n += 1
        elif t[0] == 0x90:
            r[1] = 0x130 >> 3; r[2] = (0x130 & 7) << 5; r[5] = 8
            self.n += 1
class Int:  # low, low, high: a frame, then the error flag, then released
    def __init__(self): self.k = 0
    def value(self, x=None):
        self.k += 1
        return 0 if self.k % 3 != 0 else 1
    def irq(self, handler=None, trigger=0, hard=False): pass
chip, port = make()
port.spi = Bus(); port.int_pin = Int()
block = bytearray(24 * 32)
keys = got = k = n = j = 0  # globals made before the heap is locked
micropython.heap_lock()
port.drain(); port._drain(None)  # as a save and the interrupt call it
for k in range(50):
    n = port.read(block)
    got += n
    for j in range(n):
        keys += block[j * 24 + 8] | (block[j * 24 + 9] << 8)
micropython.heap_unlock()
out(frames=port.frames, got=got, keys=keys, overruns=port.overruns)
""")
    assert r["got"] >= 20 and r["keys"] == r["got"] * 0x130
    assert 0 <= r["frames"] - r["got"] < 64  # what the last read left in the ring
    assert r["overruns"] == 1


def test_mcp2515_irq_drains_during_a_long_status_line_and_a_full_ring_leaves_frames_in_the_chip():
    r = run(r"""
chip, port = make()
port.attach_irq(2)
for k in range(10):
    chip.schedule.append((chip.now + (k + 1) * 300000, 0x130, False, bytes([k]) * 8))
chip.busy(5000000)  # 5 ms of Python (a status line): the soft IRQ runs
got = [g[3][0] for g in drain_all(port)]
lost1 = chip.lost
for k in range(D.RING + 10):
    chip.schedule.append((chip.now + (k + 1) * 300000, 0x130, False, bytes([k]) * 8))
chip.busy((D.RING + 20) * 300000)
got2 = drain_all(port)
out(got=got, lost1=lost1, lost=chip.lost, n2=len(got2), overruns=port.overruns, ring=D.RING)
""")
    assert r["got"] == list(range(10)) and r["lost1"] == 0
    # RING + 10 frames and nobody reading: the ring takes RING - 1, the chip holds 2 more, the rest it loses
    # and says so
    assert r["n2"] == r["ring"] - 1 + 2 and r["lost"] == r["ring"] + 10 - r["n2"] and r["overruns"] >= 1
