"""MCP2515 stand-alone CAN controller over SPI, pure MicroPython (RP2040 / ESP32 boards).

Register-level, written from the Microchip MCP2515 datasheet (DS20001801):

* SPI instructions RESET 0xC0, READ 0x03, WRITE 0x02, READ RX BUFFER 0x90 /
  0x94 (clears RXnIF when CS rises), LOAD TX BUFFER 0x40, RTS 0x81, BIT
  MODIFY 0x05.
* After RESET the chip is in configuration mode once its oscillator start-up
  timer (128 OSC1 cycles) has run; the driver waits RESET_WAIT_US, far longer,
  then checks CANSTAT.OPMOD. Every mode request (CANCTRL.REQOP) is verified
  against CANSTAT.OPMOD within MODE_TIMEOUT_US, else MCP2515Error: a chip
  that is not wired, not powered or without a clock reads back nonsense.
* Two receive buffers: RXB0 (mask RXM0, filters RXF0-1) and RXB1 (RXM1,
  RXF2-5). RXB0CTRL.BUKT is set, so a frame for a full RXB0 rolls over into
  RXB1. When both are full, RXB0 is read first: if RXB1 was filled by
  rollover, RXB0 is the older frame (for a direct RXF2-5 hit the chip does
  not record which came first).
* EFLG.RX0OVR / RX1OVR (a frame lost because its buffer was full) are read
  with CANINTF in one READ, counted and cleared by BIT MODIFY - the other
  EFLG bits are read-only. TEC / REC and EFLG give the error state.
* Bus-off: the chip leaves it by itself after 128 x 11 recessive bits; if it
  has not by the time restart() is called, the driver re-initialises it,
  rate-limited by canport.Backoff (100 ms doubling to 5 s).
* Bit timing is computed (bit_timing), with the sample point stated: TQ =
  2 (BRP + 1) / FOSC, bit = SyncSeg (1) + PropSeg + PS1 + PS2 TQ, sample
  point = (1 + PropSeg + PS1) / bit.

Receive is drained into a preallocated ring of RING frames: from the INT
pin's falling-edge interrupt once attach_irq() has been called (a soft IRQ:
it runs between bytecodes, so a long status line or tick does not leave the
chip's two buffers full), and from every poll(). Nothing here allocates after
the constructor.
"""

from micropython import const

from . import record
from .canport import Backoff, STATE_ACTIVE, STATE_BUS_OFF, STATE_PASSIVE, STATE_WARNING
from .compat import now_us, tdiff

try:
    from time import sleep_us  # pyright: ignore[reportAssignmentType]  (the except branch's stand-in differs)
except ImportError:  # CPython
    from time import sleep as _sleep_s  # pyright: ignore[reportAttributeAccessIssue]

    def sleep_us(us):  # CPython's stand-in for MicroPython's
        _sleep_s(us / 1000000)


RESET = const(0xC0)
READ = const(0x03)
WRITE = const(0x02)
BIT_MODIFY = const(0x05)
READ_RXB0 = const(0x90)
READ_RXB1 = const(0x94)
LOAD_TXB0 = const(0x40)
RTS_TXB0 = const(0x81)

CANSTAT = const(0x0E)
CANCTRL = const(0x0F)
TEC = const(0x1C)
REC = const(0x1D)
CNF3 = const(0x28)
CNF2 = const(0x29)
CNF1 = const(0x2A)
CANINTE = const(0x2B)
CANINTF = const(0x2C)
EFLG = const(0x2D)
TXB0CTRL = const(0x30)
RXB0CTRL = const(0x60)
RXB1CTRL = const(0x70)

MODE_NORMAL = const(0x00)
MODE_LISTEN = const(0x60)
MODE_CONFIG = const(0x80)
OPMOD_MASK = const(0xE0)

# CANINTF / CANINTE bits
RX0IF = const(0x01)
RX1IF = const(0x02)
ERRIF = const(0x20)
# EFLG bits
RX1OVR = const(0x80)
RX0OVR = const(0x40)
TXBO = const(0x20)
TXEP = const(0x10)
RXEP = const(0x08)
EWARN = const(0x01)

RESET_WAIT_US = const(2000)
MODE_TIMEOUT_US = const(20000)

RING = const(16)  # frames the driver holds between two polls
SLOT = const(14)  # one READ RX BUFFER transfer: instruction byte, SIDH..D7

# filter register bases: RXF0..RXF5, masks RXM0, RXM1 (SIDH address)
FILTER_ADDR = (0x00, 0x04, 0x08, 0x10, 0x14, 0x18)
MASK_ADDR = (0x20, 0x24)


class MCP2515Error(Exception):
    pass


def bit_timing(osc_hz, bitrate, sample_permille=875):
    """(CNF1, CNF2, CNF3, sample point in permille) for a bit rate.

    The largest number of time quanta (5..25) that divides the oscillator
    exactly, SJW 1 TQ, one sample per bit, and the sample point nearest the
    one asked for (SAE J2284's 87.5 % by default) that the segment limits
    allow: PropSeg and PS1 1..8 TQ, PS2 2..8 TQ and not longer than
    PropSeg + PS1. Raises ValueError when no prescaler gives the rate.
    """
    for brp in range(64):
        per = 2 * (brp + 1) * bitrate
        n = osc_hz // per
        if n > 25 or n * per != osc_hz:
            continue
        if n < 5:
            break
        s = (n * sample_permille + 500) // 1000  # TQ before the sample point
        if s > n - 2:
            s = n - 2
        if s > 17:
            s = 17
        ps2 = n - s
        if ps2 > 8:
            ps2 = 8
            s = n - 8
        prop = (s - 1) // 2
        ps1 = s - 1 - prop
        if ps1 > 8:
            ps1 = 8
            prop = s - 1 - 8
        if prop < 1 or prop > 8 or ps2 > prop + ps1:
            continue
        cnf1 = brp  # SJW = 1 TQ (bits 7:6 = 00)
        cnf2 = 0x80 | ((ps1 - 1) << 3) | (prop - 1)  # BTLMODE: PS2 from CNF3
        cnf3 = ps2 - 1
        return cnf1, cnf2, cnf3, s * 1000 // n
    raise ValueError("no MCP2515 bit timing for a %d Hz oscillator at %d bit/s" % (osc_hz, bitrate))


def id_registers(value, extended, out, o):
    """SIDH, SIDL, EID8, EID0 of an identifier (or mask) into out[o:o+4]."""
    if extended:
        sid = (value >> 18) & 0x7FF
        eid = value & 0x3FFFF
        out[o] = sid >> 3
        out[o + 1] = ((sid & 7) << 5) | 0x08 | (eid >> 16)
        out[o + 2] = (eid >> 8) & 0xFF
        out[o + 3] = eid & 0xFF
    else:
        out[o] = (value >> 3) & 0xFF
        out[o + 1] = (value & 7) << 5
        out[o + 2] = 0
        out[o + 3] = 0


class MCP2515Port:
    def __init__(self, spi, cs, int_pin, gen, osc_mhz=8, bitrate=500000, transmit=False):
        self.spi = spi
        self.cs = cs
        self.int_pin = int_pin
        self.gen = gen
        self.transmit = transmit
        self.mode = MODE_NORMAL if transmit else MODE_LISTEN
        self.cnf = bit_timing(osc_mhz * 1000000, bitrate)
        self.sample_permille = self.cnf[3]
        self.tx = bytearray(14)
        self.small = bytearray(4)
        self.small_rx = bytearray(4)
        self.one = memoryview(self.small)[:1]
        self.three = memoryview(self.small)[:3]
        self.cmd_rxb0 = bytearray(SLOT)
        self.cmd_rxb0[0] = READ_RXB0
        self.cmd_rxb1 = bytearray(SLOT)
        self.cmd_rxb1[0] = READ_RXB1
        # ring of raw READ RX BUFFER replies (one slot stays free: head == tail is empty)
        self.ring = bytearray(SLOT * RING)
        mv = memoryview(self.ring)
        self.slots = [mv[k * SLOT:(k + 1) * SLOT] for k in range(RING)]
        self.datas = [mv[k * SLOT + 6:(k + 1) * SLOT] for k in range(RING)]
        self.head = 0
        self.tail = 0
        self.held = False  # the slot at tail is the caller's frame until the next poll
        self.busy = False  # an SPI transaction is under way: the IRQ must not start one
        self.irq_handler = self._irq  # bound once: an IRQ must not allocate
        # counters for the status line
        self.frames = 0
        self.overruns = 0        # RX0OVR / RX1OVR seen: at least one frame lost in the chip each
        self.tec = 0
        self.rec = 0
        self.eflg = 0
        self.restarts = 0
        self.backoff = Backoff()
        cs.value(1)
        self.init_chip()

    @classmethod
    def from_config(cls, gen, cfg):
        from machine import SPI, Pin  # noqa: board only

        if cfg["pin_sck"] is None:  # the bus's default pins
            spi = SPI(cfg["mcp2515_spi"], baudrate=cfg["mcp2515_baudrate"], polarity=0, phase=0)
        else:
            spi = SPI(cfg["mcp2515_spi"], baudrate=cfg["mcp2515_baudrate"], polarity=0, phase=0,
                      sck=Pin(cfg["pin_sck"]), mosi=Pin(cfg["pin_mosi"]), miso=Pin(cfg["pin_miso"]))
        cs = Pin(cfg["pin_cs"], Pin.OUT, value=1)
        int_pin = Pin(cfg["pin_int"], Pin.IN, Pin.PULL_UP)
        port = cls(spi, cs, int_pin, gen, cfg["mcp2515_osc_mhz"], cfg["can_bitrate"], cfg["transmit"])
        port.attach_irq(Pin.IRQ_FALLING)
        return port

    def init_chip(self):
        """RESET, wait, verify configuration mode, timing, filters, run mode."""
        self.busy = True
        try:
            self.small[0] = RESET
            self._out(self.one)
            sleep_us(RESET_WAIT_US)
            self.wait_mode(MODE_CONFIG)
            c = self.cnf
            self.write_reg(CNF1, c[0])
            self.write_reg(CNF2, c[1])
            self.write_reg(CNF3, c[2])
            self.set_filters(self.gen.MCP2515_MASKS, self.gen.MCP2515_FILTERS)
            self.write_reg(RXB0CTRL, 0x04)  # RXM = 00 (filters on), BUKT: roll over into RXB1
            self.write_reg(RXB1CTRL, 0x00)
            self.write_reg(CANINTE, RX0IF | RX1IF | ERRIF)  # -> INT pin
            self.write_reg(CANCTRL, self.mode)
            self.wait_mode(self.mode)
        finally:
            self.busy = False

    def wait_mode(self, mode):
        t0 = now_us()
        while True:
            s = self.read_reg(CANSTAT)
            if s & OPMOD_MASK == mode:
                return
            if tdiff(now_us(), t0) > MODE_TIMEOUT_US:
                raise MCP2515Error("MCP2515 not in mode 0x%02x after %d ms (CANSTAT reads 0x%02x): check its SPI "
                                   "wiring, chip select and oscillator" % (mode, MODE_TIMEOUT_US // 1000, s))
            sleep_us(100)

    def attach_irq(self, trigger):
        """Drain on the INT pin's falling edge (machine.Pin.IRQ_FALLING)."""
        self.int_pin.irq(handler=self.irq_handler, trigger=trigger)

    # ---- SPI primitives ------------------------------------------------
    def _out(self, buf):
        self.cs.value(0)
        self.spi.write(buf)
        self.cs.value(1)

    def write_reg(self, addr, value):
        s = self.small
        s[0] = WRITE
        s[1] = addr
        s[2] = value
        self._out(self.three)

    def bit_modify(self, addr, mask, value):
        s = self.small
        s[0] = BIT_MODIFY
        s[1] = addr
        s[2] = mask
        s[3] = value
        self._out(s)

    def read_reg(self, addr):
        """One register (READ); small_rx[2:4] then holds it and the next one."""
        s = self.small
        s[0] = READ
        s[1] = addr
        s[2] = 0
        s[3] = 0
        self.cs.value(0)
        self.spi.write_readinto(s, self.small_rx)
        self.cs.value(1)
        return self.small_rx[2]

    def set_filters(self, masks, filters):
        buf = bytearray(6)
        for k in range(2):
            value, ext = masks[k] if k < len(masks) else (0, 0)
            buf[0] = WRITE
            buf[1] = MASK_ADDR[k]
            id_registers(value, ext, buf, 2)
            self._out(buf)
        for k in range(6):
            if k < len(filters):
                value, ext = filters[k]
            elif filters:
                value, ext = filters[-1]  # unused filters repeat the last one
            else:
                value, ext = 0, 0
            buf[0] = WRITE
            buf[1] = FILTER_ADDR[k]
            id_registers(value, ext, buf, 2)
            self._out(buf)

    # ---- receive ---------------------------------------------------------
    def _irq(self, _pin):
        if not self.busy:
            self.drain()

    def drain(self):
        """Move every frame the chip holds into the ring, oldest first."""
        if self.busy or self.int_pin.value():  # INT high: no RXnIF, no ERRIF
            return
        self.busy = True
        spi = self.spi
        cs = self.cs
        while not self.int_pin.value():
            self.read_reg(CANINTF)  # and EFLG, the next register
            f = self.small_rx[2]
            e = self.small_rx[3]
            if e & (RX0OVR | RX1OVR):
                self.overruns += (1 if e & RX0OVR else 0) + (1 if e & RX1OVR else 0)
                self.bit_modify(EFLG, RX0OVR | RX1OVR, 0)
            if f & ERRIF:
                self.eflg = e
                self.bit_modify(CANINTF, ERRIF, 0)
            for k in (0, 1):
                if not f & (RX0IF if k == 0 else RX1IF):
                    continue
                h = self.head
                nh = h + 1 if h < RING - 1 else 0
                if nh == self.tail:
                    # the ring is full: the frame stays in the chip (its buffers are
                    # two more slots) until a poll makes room; the chip counts what
                    # it cannot hold
                    self.busy = False
                    return
                cs.value(0)
                spi.write_readinto(self.cmd_rxb0 if k == 0 else self.cmd_rxb1, self.slots[h])
                cs.value(1)
                self.head = nh
                self.frames += 1
        self.busy = False

    def poll(self, fr):
        self.drain()
        t = self.tail
        if self.held:
            t = t + 1 if t < RING - 1 else 0
            self.tail = t
            self.held = False
        if t == self.head:
            return False
        self.held = True
        r = self.slots[t]
        sidh = r[1]
        sidl = r[2]
        if sidl & 0x08:  # IDE: extended
            key = (sidh << 21) | ((sidl & 0xE0) << 13) | ((sidl & 0x03) << 16) | (r[3] << 8) | r[4]
            key |= record.KEY_EXTENDED
            fr.flags = record.FLAG_EXTENDED
            if r[5] & 0x40:  # RTR bit of DLC
                fr.flags |= record.FLAG_REMOTE
        else:
            key = (sidh << 3) | (sidl >> 5)
            fr.flags = record.FLAG_REMOTE if sidl & 0x10 else 0  # SRR: standard remote frame
        fr.key = key
        d = r[5] & 0x0F
        fr.dlc = d if d <= 8 else 8
        fr.data = self.datas[t]
        return True

    # ---- transmit ----------------------------------------------------------
    def send(self, can_id, extended, buf, n):
        if not self.transmit or self.busy:
            return False
        self.busy = True
        try:
            if self.read_reg(TXB0CTRL) & 0x08:  # TXREQ still set: busy
                return False
            tx = self.tx
            tx[0] = LOAD_TXB0
            id_registers(can_id, extended, tx, 1)
            tx[5] = n
            for k in range(8):
                tx[6 + k] = buf[k] if k < n else 0
            self._out(tx)
            self.small[0] = RTS_TXB0
            self._out(self.one)
            return True
        finally:
            self.busy = False

    # ---- errors --------------------------------------------------------------
    def state(self):
        if self.busy:
            return self.state_of(self.eflg)
        self.busy = True
        self.read_reg(TEC)  # and REC
        self.tec = self.small_rx[2]
        self.rec = self.small_rx[3]
        self.eflg = self.read_reg(EFLG)
        self.busy = False
        s = self.state_of(self.eflg)
        if s == STATE_ACTIVE:
            self.backoff.reset()
        return s

    @staticmethod
    def state_of(e):
        if e & TXBO:
            return STATE_BUS_OFF
        if e & (TXEP | RXEP):
            return STATE_PASSIVE
        if e & EWARN:
            return STATE_WARNING
        return STATE_ACTIVE

    def restart(self):
        """Bus-off recovery: re-initialise the chip, no more often than the back-off allows."""
        if self.busy or not self.backoff.due(now_us()):
            return
        self.restarts += 1
        try:
            self.init_chip()
        except MCP2515Error:
            pass  # still not answering: the next attempt after the back-off
