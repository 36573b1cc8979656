"""MCP2515 stand-alone CAN controller over SPI, pure MicroPython (RP2040 / ESP32 boards).

Register-level, written from the Microchip MCP2515 datasheet (DS20001801):

* SPI instructions RESET 0xC0, READ 0x03, WRITE 0x02, READ RX BUFFER 0x90 /
  0x94 (clears RXnIF when CS rises), READ STATUS 0xA0 (RX0IF and RX1IF in
  bits 0 and 1), LOAD TX BUFFER 0x40, RTS 0x81, BIT MODIFY 0x05.
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
* EFLG.RX0OVR / RX1OVR (a frame lost because its buffer was full) set
  ERRIF, which holds INT low: with no receive flag up, CANINTF and EFLG are
  read in one READ, the overruns counted and cleared by BIT MODIFY - the
  other EFLG bits are read-only. TEC / REC and EFLG give the error state.
* Bus-off: the chip leaves it by itself after 128 x 11 recessive bits; if it
  has not by the time restart() is called, the driver re-initialises it,
  rate-limited by canport.Backoff (100 ms doubling to 5 s).
* Bit timing is computed (bit_timing), with the sample point stated: TQ =
  2 (BRP + 1) / FOSC, bit = SyncSeg (1) + PropSeg + PS1 + PS2 TQ, sample
  point = (1 + PropSeg + PS1) / bit.

Receive is drained into a preallocated ring of RING frames: from the INT
pin's falling-edge interrupt once attach_irq() has been called, and from
every read(). The interrupt is a hard one: a soft IRQ waits for the next
bytecode, and the tick's viper code and a status line written to USB run
for longer than the chip's two buffers last on a busy bus (RXB1 alone holds
the frames of filters RXF2-5: one buffer). Per frame the drain costs two SPI
transactions (READ STATUS, then READ RX BUFFER straight into the ring slot)
and a look at INT, in viper; on an RP2040 it drives the SPI block (PL022)
that machine.SPI set up, chip select and INT through the SIO's registers,
where each machine.Pin or machine.SPI call costs about as much as the bytes
on the wire. read() hands the ring to the firmware as stream records in one
viper pass. Nothing here allocates after the constructor (a hard IRQ may
not).
"""

from array import array

import micropython
from micropython import const

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
READ_STATUS = const(0xA0)
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

RING = const(64)  # frames the driver holds between two reads: 14 ms of a saturated 500 kbit/s bus
IDLE_MS = const(4)  # how long the board loop may sleep between reads (app.run_port)
SLOT = const(14)  # one READ RX BUFFER transfer: instruction byte, SIDH..D7
# the ring's state and the drain's registers, in one int array the
# interrupt and read() share (one attribute for the drain to look up)
HEAD = const(0)  # the next slot the drain fills
TAIL = const(1)  # the next slot read() takes (HEAD == TAIL: empty)
FRAMES = const(2)  # frames taken from the chip
BUSY = const(3)  # an SPI sequence is under way: the interrupt must not start one
HW = const(4)  # RP2040: the SPI block's address (0: machine.SPI)
CS_MASK = const(5)  # RP2040: the chip select's SIO bit
INT_MASK = const(6)  # RP2040: INT's SIO bit

# RP2040 (datasheet 2.3.1.7, 4.4.4): SPI0's registers, the next block SPI1's
RP2040_SPI0 = const(0x4003C000)
RP2040_SPI_STRIDE = const(0x4000)

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
    """``regs``: (SPI block address, chip select GPIO, INT GPIO) on an RP2040,
    whose drain then works on the registers (see _drain)."""

    def __init__(self, spi, cs, int_pin, gen, osc_mhz=8, bitrate=500000, transmit=False, regs=None):
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
        self.cmd_status = bytes((READ_STATUS, 0))
        self.st = bytearray(2)
        self.cmd_rxb0 = bytearray(SLOT)
        self.cmd_rxb0[0] = READ_RXB0
        self.cmd_rxb1 = bytearray(SLOT)
        self.cmd_rxb1[0] = READ_RXB1
        # ring of raw READ RX BUFFER replies (one slot stays free) and its state
        self.idle_ms = IDLE_MS
        self.ring = bytearray(SLOT * RING)
        mv = memoryview(self.ring)
        self.slots = [mv[k * SLOT:(k + 1) * SLOT] for k in range(RING)]
        hw, cs_pin, int_gpio = regs if regs is not None else (0, 0, 0)
        self.ix = array("i", (0, 0, 0, 0, hw, 1 << cs_pin, 1 << int_gpio))
        # counters for the status line
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
        import sys

        from machine import SPI, Pin  # noqa: board only

        if cfg["pin_sck"] is None:  # the bus's default pins
            spi = SPI(cfg["mcp2515_spi"], baudrate=cfg["mcp2515_baudrate"], polarity=0, phase=0)
        else:
            spi = SPI(cfg["mcp2515_spi"], baudrate=cfg["mcp2515_baudrate"], polarity=0, phase=0,
                      sck=Pin(cfg["pin_sck"]), mosi=Pin(cfg["pin_mosi"]), miso=Pin(cfg["pin_miso"]))
        cs = Pin(cfg["pin_cs"], Pin.OUT, value=1)
        int_pin = Pin(cfg["pin_int"], Pin.IN, Pin.PULL_UP)
        regs = None
        if sys.platform == "rp2":
            regs = (RP2040_SPI0 + RP2040_SPI_STRIDE * cfg["mcp2515_spi"], cfg["pin_cs"], cfg["pin_int"])
        port = cls(spi, cs, int_pin, gen, cfg["mcp2515_osc_mhz"], cfg["can_bitrate"], cfg["transmit"], regs)
        port.attach_irq(Pin.IRQ_FALLING)
        return port

    def init_chip(self):
        """RESET, wait, verify configuration mode, timing, filters, run mode."""
        self.ix[BUSY] = 1
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
            self._release()

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
        """Drain on the INT pin's falling edge (machine.Pin.IRQ_FALLING), in the interrupt itself."""
        self.irq_handler = self._drain  # bound once, here: the interrupt itself must not allocate
        self.int_pin.irq(handler=self.irq_handler, trigger=trigger, hard=True)

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
    def drain(self):
        """Move every frame the chip holds into the ring, oldest first (a trip save calls it between chunks)."""
        self._drain(None)

    # viper: native code keeps its locals on the C stack, where a bytecode
    # function this size takes its call state from the heap on every call (a
    # search of the allocation table that can last longer than a receive
    # buffer does on a busy bus). It takes the pin the interrupt passes (None
    # otherwise: viper has no default arguments).
    @micropython.viper
    def _drain(self, _pin):
        """drain(): on an RP2040 (ix[HW] set) through the SPI block's data and
        status registers (the block machine.SPI configured), chip select and
        INT as SIO GPIO_OUT_CLR / GPIO_OUT_SET / GPIO_IN bits; elsewhere
        through machine.SPI and machine.Pin."""
        ix = ptr32(self.ix)
        if ix[BUSY]:
            return
        ix[BUSY] = 1
        hw = ix[HW]
        dr = ptr32(hw + 0x08)  # SSPDR
        sr = ptr32(hw + 0x0C)  # SSPSR: bit 1 TX FIFO not full, bit 2 RX FIFO not empty
        gpio_in = ptr32(0xD0000004)
        cs_high = ptr32(0xD0000014)
        cs_low = ptr32(0xD0000018)
        cs_bit = ix[CS_MASK]
        int_bit = ix[INT_MASK]
        spi = cs = pin = _pin  # objects from the start, as viper needs: machine's below, without registers
        if hw:
            while sr[0] & 4:
                dr[0]  # nothing left from an earlier transfer
        else:
            spi = self.spi
            cs = self.cs
            pin = self.int_pin
        ring = ptr8(self.ring)
        st = ptr8(self.st)
        while True:
            # INT high: no receive flag, no ERRIF. Let go of the bus, then look
            # again: a frame that came as it was let go found it busy
            # (an int each way: viper gives a conditional expression one type)
            if hw:
                high = gpio_in[0] & int_bit
            else:
                high = 1 if pin.value() else 0
            if high:
                ix[BUSY] = 0
                if hw:
                    high = gpio_in[0] & int_bit
                else:
                    high = 1 if pin.value() else 0
                if high:
                    return
                ix[BUSY] = 1
            # READ STATUS: RX0IF, RX1IF
            if hw:
                cs_low[0] = cs_bit
                dr[0] = READ_STATUS
                dr[0] = 0
                j = 0
                while j < 2:
                    if sr[0] & 4:
                        st[j] = dr[0]
                        j += 1
                cs_high[0] = cs_bit
            else:
                cs.value(0)
                spi.write_readinto(self.cmd_status, self.st)
                cs.value(1)
            s = st[1] & (RX0IF | RX1IF)
            if not s:
                self._errors()
                continue
            # RXB0 first: with both full, a rolled-over frame in RXB1 is the newer
            k = 0
            while k < 2:
                if s & (1 << k):
                    h = ix[HEAD]
                    nh = h + 1 if h < RING - 1 else 0
                    if nh == ix[TAIL]:
                        # the ring is full: the frame stays in the chip (its buffers
                        # are two more slots) until a read makes room; the chip
                        # counts what it cannot hold
                        ix[BUSY] = 0
                        return
                    # READ RX BUFFER into the ring's slot (the flag clears as CS rises)
                    if hw:
                        o = h * SLOT
                        cs_low[0] = cs_bit
                        i = 0
                        j = 0
                        while j < SLOT:  # up to 8 bytes in flight: the FIFOs' depth
                            if i < SLOT and i - j < 8 and sr[0] & 2:
                                dr[0] = (READ_RXB1 if k else READ_RXB0) if i == 0 else 0
                                i += 1
                            if sr[0] & 4:
                                ring[o + j] = dr[0]
                                j += 1
                        cs_high[0] = cs_bit
                    else:
                        cs.value(0)
                        spi.write_readinto(self.cmd_rxb1 if k else self.cmd_rxb0, self.slots[h])
                        cs.value(1)
                    ix[HEAD] = nh
                    ix[FRAMES] += 1
                k += 1

    def _release(self):
        """The end of an SPI sequence. A frame that came meanwhile found the
        bus busy and left INT low: no other edge will come, so drain it now."""
        self.ix[BUSY] = 0
        self._drain(None)

    @property
    def frames(self):
        """Frames taken from the chip since the start."""
        return self.ix[FRAMES]

    def _errors(self):
        """ERRIF: count and clear the overruns, keep EFLG for the state."""
        self.read_reg(CANINTF)  # and EFLG, the next register
        e = self.small_rx[3]
        if e & (RX0OVR | RX1OVR):
            self.overruns += (1 if e & RX0OVR else 0) + (1 if e & RX1OVR else 0)
            self.bit_modify(EFLG, RX0OVR | RX1OVR, 0)
        self.eflg = e
        self.bit_modify(CANINTF, ERRIF, 0)

    def read(self, block):
        """The frames in the ring as stream records at the start of block; how many."""
        self._drain(None)  # what the interrupt left in the chip (a full ring, or an SPI sequence under way)
        return _records(self.ring, self.ix, block, len(block) // 24)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)

    # ---- transmit ----------------------------------------------------------
    def send(self, can_id, extended, buf, n):
        if not self.transmit or self.ix[BUSY]:
            return False
        self.ix[BUSY] = 1
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
            self._release()

    # ---- errors --------------------------------------------------------------
    def state(self):
        """The error state from EFLG as the drain last read it (every change of
        its state bits raises ERRIF, which the drain handles), and TEC / REC for
        the status line: one transaction, so the bus is never held longer than
        a frame takes to arrive."""
        self._drain(None)
        if not self.ix[BUSY]:
            self.ix[BUSY] = 1
            self.read_reg(TEC)  # and REC, the next register
            self.tec = self.small_rx[2]
            self.rec = self.small_rx[3]
            self._release()
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
        if self.ix[BUSY] or not self.backoff.due(now_us()):
            return
        self.restarts += 1
        try:
            self.init_chip()
        except MCP2515Error:
            pass  # still not answering: the next attempt after the back-off


@micropython.viper
def _records(ring: ptr8, ix: ptr32, rec: ptr8, nmax: int) -> int:
    """The ring's frames (READ RX BUFFER replies, from ix[TAIL] up to
    ix[HEAD]) as stream records in rec, at most nmax; advances ix[TAIL]. Each slot: the
    instruction byte, SIDH, SIDL, EID8, EID0, DLC, D0..D7 (datasheet 3.1)."""
    t = ix[TAIL]
    h = ix[HEAD]
    n = 0
    while t != h and n < nmax:
        s = t * SLOT
        sidh = ring[s + 1]
        sidl = ring[s + 2]
        dlc = ring[s + 5]
        if sidl & 0x08:  # IDE: extended
            key = (sidh << 21) | ((sidl & 0xE0) << 13) | ((sidl & 0x03) << 16) | (ring[s + 3] << 8) | ring[s + 4]
            flags = 1 | (2 if dlc & 0x40 else 0)  # RTR bit of DLC
        else:
            key = (sidh << 3) | (sidl >> 5)
            flags = 2 if sidl & 0x10 else 0  # SRR: a standard remote frame
        o = n * 24
        rec[o + 8] = key & 0xFF
        rec[o + 9] = (key >> 8) & 0xFF
        rec[o + 10] = (key >> 16) & 0xFF
        rec[o + 11] = (key >> 24) & 0x1F
        rec[o + 12] = flags
        dlc &= 0x0F
        rec[o + 13] = dlc if dlc <= 8 else 8
        k = 0
        while k < 8:
            rec[o + 16 + k] = ring[s + 6 + k]
            k += 1
        t = t + 1 if t < RING - 1 else 0
        n += 1
    ix[TAIL] = t
    return n
