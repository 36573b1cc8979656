"""CAN ports: one small interface over three very different sources.

    read(block) -> n      up to len(block) // 24 received frames as stream
                          records straight into block (keifw/record.py)
    send(id, extended, buf, n) -> bool
    state() -> 0 active, 1 warning, 2 passive, 3 bus-off, 4 stopped
    restart()

Ports are listen-only unless the config enables transmit: a device on a
car's bus must not disturb it (silent mode acknowledges nothing and sends
no error frames).

* MachineCANPort: MicroPython's upstream ``machine.CAN`` (v1.28+).
* keifw.mcp2515.MCP2515Port: an MCP2515 over SPI, pure MicroPython.
* StreamPort: 24-byte frame records (keifw/record.py) over a binary stream;
  the SIL reads blocks of records directly with Firmware.records().
"""

from array import array

import micropython

from . import record
from .compat import now_us, tadd, tdiff

STATE_ACTIVE = 0
STATE_WARNING = 1
STATE_PASSIVE = 2
STATE_BUS_OFF = 3
STATE_STOPPED = 4


class StreamPort:
    """Frame records from a stream (stdin, a Unix socket, a file)."""

    def __init__(self, rx, tx=None):
        self.rx = rx
        self.tx = tx
        self.rec = bytearray(record.SIZE)
        self.out = bytearray(record.SIZE)
        # a record cut by a short read is completed through one of these
        # (preallocated: a memoryview slice per short read would allocate)
        rec = memoryview(self.rec)
        self.rest = [rec[:k] for k in range(record.SIZE)]
        self.eof = False

    def read(self, block):
        """Whole records straight into block: they are stream records already,
        so nothing is decoded or copied per frame. How many (0: none, or the
        end of the stream)."""
        n = self.rx.readinto(block)
        if not n:
            self.eof = True
            return 0
        cut = n % record.SIZE
        if cut:  # a pipe's short read ended inside a record: complete it
            missing = record.SIZE - cut
            got = 0
            while got < missing:
                m = self.rx.readinto(self.rest[missing - got])
                if not m:
                    self.eof = True
                    return n // record.SIZE
                for k in range(m):
                    block[n + k] = self.rec[k]
                n += m
                got += m
        return n // record.SIZE

    def echo(self, buf, j):
        """Record j of buf back to the host unchanged (a SYNC's answer)."""
        if self.tx is None:
            return
        o = self.out
        b = j * record.SIZE
        for k in range(record.SIZE):
            o[k] = buf[b + k]
        try:
            self.tx.write(o)
        except OSError:
            pass

    def send(self, can_id, extended, buf, n):
        if self.tx is None:
            return False
        o = self.out
        t = now_us()
        for k in range(8):
            o[k] = (t >> (8 * k)) & 0xFF if k < 4 else 0
        o[8] = can_id & 0xFF
        o[9] = (can_id >> 8) & 0xFF
        o[10] = (can_id >> 16) & 0xFF
        o[11] = (can_id >> 24) & 0xFF
        o[12] = record.FLAG_EXTENDED if extended else 0
        o[13] = n
        o[14] = 0
        o[15] = 0
        for k in range(8):
            o[16 + k] = buf[k] if k < n else 0
        try:
            self.tx.write(o)
        except OSError:
            return False
        return True

    def state(self):
        return STATE_STOPPED if self.eof else STATE_ACTIVE

    def restart(self):
        pass


class Backoff:
    """When a bus-off restart may be tried again: 100 ms, doubling to 5 s.

    On the 30-bit us clock itself: a ms count taken from it wraps at
    2**30 // 1000, where tdiff would stall the back-off for good.
    """

    def __init__(self):
        self.ms = 100
        self.at = 0
        self.tried = False

    def due(self, now):
        """True (and the next attempt scheduled) when a restart may run now."""
        if self.tried and tdiff(now, self.at) < 0:
            return False
        self.tried = True
        self.at = tadd(now, self.ms * 1000)
        self.ms = min(self.ms * 2, 5000)
        return True

    def reset(self):
        """The controller is error active again: the next bus-off starts at 100 ms."""
        self.ms = 100


class MachineCANPort:
    """machine.CAN (MicroPython v1.28+ API): set_filters, recv(list), restart.
    ``can``: a controller already open (by default the port opens CAN(can_id))."""

    def __init__(self, gen, can_id=1, bitrate=500000, transmit=False, can=None):
        if can is None:
            # machine.CAN is upstream since v1.28 (STM32 today; the ESP32 and RP2040
            # stubs do not list it yet)
            from machine import CAN  # pyright: ignore[reportAttributeAccessIssue]

            can = CAN(can_id, bitrate, mode=CAN.MODE_NORMAL if transmit else CAN.MODE_SILENT)
        self.CAN = type(can)
        self.can = can
        self.filtered = True
        try:
            self.can.set_filters(gen.CAN_FILTERS)
        except (ValueError, OSError):
            # more filters than the controller has: take everything, the
            # decoder drops unknown ids anyway
            self.can.set_filters(None)
            self.filtered = False
        self.buf = bytearray(8)
        self.rx = [0, memoryview(self.buf), 0, 0]  # recv fills it in place
        self.ext_flag = self.CAN.FLAG_EXT_ID
        self.rtr_flag = self.CAN.FLAG_RTR
        self.counts = array("i", (0,))  # frames the controller says it lost (recv's errors)
        self.backoff = Backoff()
        self.restarts = 0

    @property
    def overruns(self):
        return self.counts[0]

    @micropython.viper
    def read(self, block) -> int:
        """Received frames as stream records at the start of block; how many.
        Viper: the loop's locals stay on the C stack (a bytecode function this
        size takes its call state from the heap on every pass)."""
        can = self.can  # can.recv(rx) below: loading recv alone would make a bound method (an allocation)
        rx = self.rx
        ext = int(self.ext_flag)
        rtr = int(self.rtr_flag)
        counts = ptr32(self.counts)
        rec = ptr8(block)
        nmax = int(len(block)) // 24
        n = 0
        while n < nmax:
            r = can.recv(rx)
            if not r:  # None: nothing received
                break
            if r[3]:
                counts[0] += 1
            key = int(r[0])
            f = int(r[2])
            data = ptr8(r[1])
            m = int(len(r[1]))
            o = n * 24
            rec[o + 8] = key & 0xFF
            rec[o + 9] = (key >> 8) & 0xFF
            rec[o + 10] = (key >> 16) & 0xFF
            rec[o + 11] = (key >> 24) & 0x1F
            rec[o + 12] = (1 if f & ext else 0) | (2 if f & rtr else 0)  # record.FLAG_EXTENDED, FLAG_REMOTE
            rec[o + 13] = m
            k = 0
            while k < 8:
                rec[o + 16 + k] = data[k] if k < m else 0
                k += 1
            n += 1
        return n

    def send(self, can_id, extended, buf, n):
        flags = self.ext_flag if extended else 0
        try:
            return self.can.send(can_id, memoryview(buf)[:n], flags) is not None
        except OSError:
            return False

    def state(self):
        s = self.can.state()
        C = self.CAN
        if s == C.STATE_ACTIVE:
            self.backoff.reset()
            return STATE_ACTIVE
        if s == C.STATE_WARNING:
            return STATE_WARNING
        if s == C.STATE_PASSIVE:
            return STATE_PASSIVE
        if s == C.STATE_BUS_OFF:
            return STATE_BUS_OFF
        return STATE_STOPPED

    def restart(self):
        """Bus-off recovery, rate-limited by the back-off."""
        if not self.backoff.due(now_us()):
            return
        self.can.restart()
        self.restarts += 1
