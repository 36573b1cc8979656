"""MCP2515 stand-alone CAN controller over SPI, pure MicroPython (RP2040 / ESP32 boards).

Register-level, from the Microchip MCP2515 datasheet (DS20001801): SPI
instructions RESET 0xC0, READ 0x03, WRITE 0x02, READ RX BUFFER 0x90/0x94
(clears RXnIF on CS high), LOAD TX BUFFER 0x40, RTS 0x81, READ STATUS 0xA0,
BIT MODIFY 0x05. Acceptance masks/filters come from the generated module
(MCP2515_MASKS / MCP2515_FILTERS: (value, extended) pairs). The controller is
put in listen-only mode (CANCTRL.REQOP = 011) unless transmit is enabled.
Frames are read when the INT pin is low (active low, RX0IE/RX1IE enabled);
all SPI transfers use preallocated buffers, so polling allocates nothing.
"""

from micropython import const

from . import record

RESET = const(0xC0)
READ = const(0x03)
WRITE = const(0x02)
BIT_MODIFY = const(0x05)
READ_STATUS = const(0xA0)
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

# filter register bases: RXF0..RXF5, masks RXM0, RXM1 (SIDH address)
FILTER_ADDR = (0x00, 0x04, 0x08, 0x10, 0x14, 0x18)
MASK_ADDR = (0x20, 0x24)

# CNF1, CNF2, CNF3 for 500 kbit/s and 250 kbit/s (sample point ~75 %)
TIMINGS = {
    (8, 500000): (0x00, 0x90, 0x02),
    (8, 250000): (0x00, 0xB1, 0x05),
    (16, 500000): (0x00, 0xF0, 0x86),
    (16, 250000): (0x41, 0xF1, 0x85),
    (20, 500000): (0x00, 0xFA, 0x87),
}


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
        self.transmit = transmit
        self.tx = bytearray(14)
        self.rx = bytearray(14)
        self.data = memoryview(self.rx)[6:14]
        self.small = bytearray(3)
        self.small_rx = bytearray(3)
        self.restarts = 0
        cs.value(1)
        self.reset()
        self.write_reg(CANCTRL, MODE_CONFIG)
        cnf = TIMINGS.get((osc_mhz, bitrate))
        if cnf is None:
            raise ValueError("no MCP2515 timing for %d MHz / %d bit/s" % (osc_mhz, bitrate))
        self.write_reg(CNF1, cnf[0])
        self.write_reg(CNF2, cnf[1])
        self.write_reg(CNF3, cnf[2])
        self.set_filters(gen.MCP2515_MASKS, gen.MCP2515_FILTERS)
        # RXB0 rolls over into RXB1; both use filters (RXM = 00)
        self.write_reg(RXB0CTRL, 0x04)
        self.write_reg(RXB1CTRL, 0x00)
        self.write_reg(CANINTE, 0x03)  # RX0IE | RX1IE -> INT pin
        self.mode = MODE_NORMAL if transmit else MODE_LISTEN
        self.write_reg(CANCTRL, self.mode)

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
        return cls(spi, cs, int_pin, gen, cfg["mcp2515_osc_mhz"], cfg["can_bitrate"], cfg["transmit"])

    # ---- SPI primitives ------------------------------------------------
    def reset(self):
        self.small[0] = RESET
        self.cs.value(0)
        self.spi.write(memoryview(self.small)[:1])
        self.cs.value(1)

    def write_reg(self, addr, value):
        s = self.small
        s[0] = WRITE
        s[1] = addr
        s[2] = value
        self.cs.value(0)
        self.spi.write(s)
        self.cs.value(1)

    def read_reg(self, addr):
        s = self.small
        s[0] = READ
        s[1] = addr
        s[2] = 0
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
            self.cs.value(0)
            self.spi.write(buf)
            self.cs.value(1)
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
            self.cs.value(0)
            self.spi.write(buf)
            self.cs.value(1)

    # ---- port interface --------------------------------------------------
    def poll(self, fr):
        if self.int_pin.value():  # INT high: nothing pending
            return False
        flags = self.read_reg(CANINTF)
        if flags & 0x01:
            cmd = READ_RXB0
        elif flags & 0x02:
            cmd = READ_RXB1
        else:
            return False
        tx = self.tx
        tx[0] = cmd
        for k in range(1, 14):
            tx[k] = 0
        self.cs.value(0)
        self.spi.write_readinto(tx, self.rx)  # RXnIF clears when CS rises
        self.cs.value(1)
        r = self.rx
        sidh = r[1]
        sidl = r[2]
        if sidl & 0x08:  # IDE: extended
            key = (sidh << 21) | ((sidl & 0xE0) << 13) | ((sidl & 0x03) << 16) | (r[3] << 8) | r[4]
            key |= record.KEY_EXTENDED
            fr.flags = record.FLAG_EXTENDED
            if r[5] & 0x40:
                fr.flags |= record.FLAG_REMOTE
        else:
            key = (sidh << 3) | (sidl >> 5)
            fr.flags = record.FLAG_REMOTE if sidl & 0x10 else 0
        fr.key = key
        fr.dlc = r[5] & 0x0F
        fr.data = self.data
        return True

    def send(self, can_id, extended, buf, n):
        if not self.transmit:
            return False
        if self.read_reg(TXB0CTRL) & 0x08:  # TXREQ still set: busy
            return False
        tx = self.tx
        tx[0] = LOAD_TXB0
        id_registers(can_id, extended, tx, 1)
        tx[5] = n
        for k in range(8):
            tx[6 + k] = buf[k] if k < n else 0
        self.cs.value(0)
        self.spi.write(tx)
        self.cs.value(1)
        self.small[0] = RTS_TXB0
        self.cs.value(0)
        self.spi.write(memoryview(self.small)[:1])
        self.cs.value(1)
        return True

    def state(self):
        e = self.read_reg(EFLG)
        if e & 0x20:
            return 3  # TXBO: bus-off
        if e & 0x18:
            return 2  # TXEP / RXEP: error passive
        if e & 0x01:
            return 1  # EWARN
        return 0

    def restart(self):
        """Bus-off recovery: back through configuration mode to the run mode."""
        self.restarts += 1
        self.write_reg(CANCTRL, MODE_CONFIG)
        self.write_reg(EFLG, 0)
        self.write_reg(CANCTRL, self.mode)
