"""A register- and timing-level model of the MCP2515, for testing the driver.

Written here from the Microchip MCP2515 datasheet (DS20001801), so it is only
as good as that reading; it is not the chip. Runs in the MicroPython unix
port next to the driver (and in CPython). What it follows:

* SPI instructions RESET, READ, WRITE, READ RX BUFFER (clears RXnIF at the
  end of the transfer), LOAD TX BUFFER, RTS, READ STATUS, BIT MODIFY (only on
  the registers the datasheet lists as bit-modifiable; elsewhere it is a
  plain write). Anything else raises: the driver must not send it.
* Registers: POR values after RESET, which takes 128 oscillator periods (the
  oscillator start-up timer) before SPI is answered. CANSTAT / CANCTRL appear
  at xEh / xFh of every row. Read-only bits stay as the chip sets them: EFLG
  bits 5..0, TEC, REC, CANSTAT, the receive buffers, BUKT1 / FILHIT. CNF1-3,
  masks and filters are writable only in configuration mode. CANCTRL.REQOP
  reaches CANSTAT.OPMOD after ``mode_ns`` (never, with ``stuck_mode``).
* Receive: a frame is accepted when its bit rate matches CNF1-3 and the
  oscillator, the chip is in normal or listen-only mode and not bus-off.
  RXM0 with RXF0-1 -> RXB0 first, then RXM1 with RXF2-5 -> RXB1 (lowest
  filter wins); RXM = 11 takes everything. For standard frames with RXM = 00
  the EID8/EID0 mask and filter bits apply to the first two data bytes. A
  frame for a full RXB0 rolls over into RXB1 when BUKT is set (FILHIT 0/1 in
  RXB1CTRL); a frame for a full buffer is lost and sets RX0OVR / RX1OVR (a
  rolled-over frame: RX1OVR) and ERRIF. INT is low while CANINTF & CANINTE.
* Errors: tx_errors() / rx_errors() raise TEC by 8 / REC by 1 per error;
  EWARN / RXWAR / TXWAR at 96, RXEP / TXEP at 128, TXBO when TEC exceeds
  255; every change of EFLG's state bits sets ERRIF. Bus-off ends after 128
  occurrences of 11 recessive bits (one per frame end on a busy bus, or 11
  idle bit times).
* On a keidrive virtual board (kd_machine) the chip is on the virtual CAN
  bus instead: ``link`` brings the frames the hub carries (each once there
  is room for it: see _from_link) and takes the ones it transmits, and ``clock_ns`` is the real clock.
* Time: ``now`` in ns. A frame arrives when its last bit is on the bus (the
  bus schedule is built by ``bus_schedule``). Every SPI transfer costs its
  bytes at ``spi_hz`` plus ``call_ns`` (the CPU's cost of one driver-level
  SPI call: chip select, the call, the bookkeeping around it); ``busy(ns)``
  is the CPU doing something else. The INT pin's interrupt handler (soft
  IRQ) runs at the next point where the CPU may run Python: in busy(...,
  irq=True), sleep_us and between the driver's calls, never inside a
  transfer or a blocking busy(..., irq=False) such as a flash write.
"""

BACKLOG = 1024  # frames a virtual board's wire holds for a chip that is not read

# bit-modifiable registers (datasheet, BIT MODIFY instruction)
_BITMOD = (0x0C, 0x0D, 0x0E, 0x0F, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x30, 0x40, 0x50, 0x60, 0x70)
_CONFIG_ONLY = tuple(range(0x00, 0x0C)) + tuple(range(0x10, 0x1C)) + tuple(range(0x20, 0x28)) + (0x28, 0x29, 0x2A)


def _writable(a):
    """Mask of the bits the MCU may write at address a."""
    lo = a & 0x0F
    if lo == 0x0E:
        return 0x00  # CANSTAT
    if lo == 0x0F:
        return 0xFF  # CANCTRL
    if a in (0x1C, 0x1D):
        return 0x00  # TEC, REC
    if a == 0x2D:
        return 0xC0  # EFLG: only RX1OVR, RX0OVR
    if a == 0x60:
        return 0x64  # RXB0CTRL: RXM, BUKT
    if a == 0x70:
        return 0x60  # RXB1CTRL: RXM
    if 0x61 <= a <= 0x6D or 0x71 <= a <= 0x7D:
        return 0x00  # receive buffers
    if a in (0x30, 0x40, 0x50):
        return 0x0B  # TXBnCTRL: TXREQ, TXP
    return 0xFF


def frame_bits(ext, dlc):
    """Bits of a data frame on the wire without stuff bits, plus the 3-bit
    intermission: the shortest a frame can be, so the most a saturated bus
    can carry."""
    return (64 if ext else 44) + 8 * dlc + 3


def bus_schedule(messages, duration_ms, bitrate, saturate=None):
    """[(t_end_ns, id, ext, data)] for periodic messages [(id, ext, dlc,
    cycle_ms, offset_ms)], every message queued at its cycle and sent in
    arbitration order (lower id first) when the bus is free. ``saturate``:
    (id, ext, dlc) of a frame that fills every idle bit time (a flood)."""
    queue = []
    for mid, ext, dlc, cycle, offset in messages:
        t = offset
        while t < duration_ms:
            queue.append((t * 1000000, mid, ext, dlc))
            t += cycle
    queue.sort()
    bit_ns = 1000000000 // bitrate
    out = []
    now = 0
    pending = []
    i = 0
    end = duration_ms * 1000000
    while now < end:
        while i < len(queue) and queue[i][0] <= now:
            pending.append(queue[i])
            i += 1
        if pending:
            best = 0
            for k in range(1, len(pending)):
                if (pending[k][1], pending[k][2]) < (pending[best][1], pending[best][2]):
                    best = k
            _t, mid, ext, dlc = pending.pop(best)
        elif saturate is not None:
            mid, ext, dlc = saturate
        else:
            if i >= len(queue):
                break
            now = queue[i][0]
            continue
        now += frame_bits(ext, dlc) * bit_ns
        out.append((now, mid, ext, bytes((mid + k) & 0xFF for k in range(dlc))))
    return out


class Pin:
    def __init__(self, chip=None, v=1):
        self.chip = chip
        self.v = v
        self.handler = None

    def value(self, x=None):
        if x is not None:
            self.v = x
            return None
        if self.chip is not None:
            return self.chip.int_level()
        return self.v

    def irq(self, handler=None, trigger=0, hard=False):
        # hard or soft, the handler runs where busy() lets an interrupt in
        self.handler = handler


class SPI:
    def __init__(self, chip):
        self.chip = chip
        self.dummy = bytearray(32)

    def write(self, b):
        self.chip.transfer(b, self.dummy)

    def write_readinto(self, t, r):
        self.chip.transfer(t, r)


class Chip:
    def __init__(self, osc_hz=8000000, bitrate=500000, spi_hz=8000000, call_ns=0, mode_ns=20000):
        self.osc_hz = osc_hz
        self.bitrate = bitrate
        self.spi_hz = spi_hz
        self.call_ns = call_ns
        self.mode_ns = mode_ns
        self.stuck_mode = False
        self.dead = False  # not wired: MISO floats high
        self.now = 0
        self.reg = bytearray(128)
        self.schedule = []
        self.next = 0
        self.int = Pin(self)
        self.cs = Pin(None, 1)
        self.spi = SPI(self)
        self.sent = []
        self.fail_tx = False
        self.received = 0
        self.filtered = 0
        self.lost = 0          # frames the chip dropped (overflow)
        self.bad_rate = 0
        self.log = []          # (t_ns, id) of every frame put in a buffer, in order
        self.in_irq = False
        self.edge = False      # INT fell while the CPU could not take the interrupt
        self.busoff_occ = 0
        self.last_arrival = 0
        self.link = None
        self.backlog = []
        self.clock_ns = None
        self._por()
        self.ready_at = 0

    # ---- state -----------------------------------------------------------
    def _por(self):
        self._matches = {}
        self._rate_ok = None
        r = self.reg
        for k in range(128):
            r[k] = 0
        for k in range(8):
            r[k * 16 + 0x0E] = 0x80  # CANSTAT: configuration mode
            r[k * 16 + 0x0F] = 0x87  # CANCTRL: REQOP config, CLKEN, CLKPRE 1:8
        self.mode_at = None

    def _a(self, a):
        a &= 0x7F
        lo = a & 0x0F
        return 0x0E if lo == 0x0E else (0x0F if lo == 0x0F else a)

    def opmod(self):
        self._mode_step()
        return self.reg[0x0E] >> 5

    def _mode_step(self):
        if self.mode_at is not None and self.now >= self.mode_at:
            self.mode_at = None
            req = self.reg[0x0F] & 0xE0
            for k in range(8):
                self.reg[k * 16 + 0x0E] = (self.reg[0x0E] & 0x1F) | req

    def int_level(self):
        self._spend(0)
        return 0 if self.reg[0x2C] & self.reg[0x2B] else 1

    def bitrate_from_cnf(self):
        r = self.reg
        brp = r[0x2A] & 0x3F
        prop = (r[0x29] & 7) + 1
        ps1 = ((r[0x29] >> 3) & 7) + 1
        ps2 = (r[0x28] & 7) + 1
        n = 1 + prop + ps1 + ps2
        return self.osc_hz / (2 * (brp + 1) * n), (1 + prop + ps1) * 1000 // n

    # ---- time ------------------------------------------------------------
    def _spend(self, ns):
        if self.clock_ns is None:
            self.now += ns
        else:
            self.now = max(self.now, self.clock_ns())
        self._deliver(self.now)

    def busy(self, ns, irq=True):
        """The CPU busy for ns elsewhere; the INT handler may run if irq (its
        time comes on top), else a falling edge waits until the next chance."""
        end = self.now + ns
        if irq:
            self._run_irq()
            s = self.schedule
            while self.next < len(s) and s[self.next][0] <= end:
                self.now = max(self.now, s[self.next][0])
                self._deliver(self.now)
                t0 = self.now
                self._run_irq()
                end += self.now - t0
        self.now = max(self.now, end)
        self._deliver(self.now)
        if irq:
            self._run_irq()

    def sleep_us(self, us):
        self.busy(us * 1000, irq=True)

    def now_us(self):
        return (self.now // 1000) & 0x3FFFFFFF

    def int_level_raw(self):
        return 0 if self.reg[0x2C] & self.reg[0x2B] else 1

    def _run_irq(self):
        """A latched falling edge of INT runs the handler (soft IRQ)."""
        h = self.int.handler
        if not self.edge or h is None or self.in_irq:
            return
        self.edge = False
        self.in_irq = True
        h(self.int)
        self.in_irq = False

    # ---- the bus -----------------------------------------------------------
    def _deliver(self, upto):
        s = self.schedule
        if self.link is not None:
            self._from_link()
        while self.next < len(s) and s[self.next][0] <= upto:
            t, fid, ext, data = s[self.next]
            self.next += 1
            was = self.int_level_raw()
            self._frame(t, fid, ext, data)
            if was and not self.int_level_raw():
                self.edge = True

    def _from_link(self):
        """A virtual board's frames, in order, each once the buffer it is
        headed for has room: the unix port on a shared host is no real-time
        machine, so the virtual wire waits instead of overrunning the chip
        (the timing is the schedule's job, in the tests). A backlog past
        BACKLOG frames (a driver that stopped reading) is lost, as overruns."""
        b = self.backlog
        if not b:  # the socket only when the backlog is used up: a poll costs no syscall then
            b.extend(self.link.records())
        while b:
            _ts, fid, ext, data = b[0]
            if len(b) <= BACKLOG and not self._room(fid, ext, data):
                return
            b.pop(0)
            self.bus_frame(fid, ext, data)

    def _room(self, fid, ext, data):
        target, _hit = self._match(fid, ext, data)
        f = self.reg[0x2C]
        if target < 0 or self.reg[0x0E] >> 5 not in (0, 3):
            return True  # filtered out, or not receiving: nothing to wait for
        if target == 0 and not f & 1:
            return True
        return not f & 2 and (target == 1 or self.reg[0x60] & 0x04)

    def bus_frame(self, fid, ext, data):
        """One frame arriving now (outside any schedule)."""
        was = self.int_level_raw()
        self._frame(self.now, fid, ext, bytes(data))
        if was and not self.int_level_raw():
            self.edge = True

    def _frame(self, t, fid, ext, data):
        r = self.reg
        self._mode_step()
        gap_bits = (t - self.last_arrival) * self.bitrate // 1000000000
        self.last_arrival = t
        if r[0x2D] & 0x20:  # bus-off: count the recovery sequence
            self.busoff_occ += 1 + max(0, gap_bits - 130) // 11
            if self.busoff_occ >= 128:
                self._set_counters(0, 0)
            return
        if self.opmod() not in (0, 3):  # normal, listen-only
            return
        if self._rate_ok is None:  # recomputed after a CNF write
            rate, _sp = self.bitrate_from_cnf()
            self._rate_ok = abs(rate - self.bitrate) <= self.bitrate * 0.005
        if not self._rate_ok:
            self.bad_rate += 1
            self.rx_errors(1)
            return
        target, hit = self._match(fid, ext, data)
        if target < 0:
            self.filtered += 1
            return
        if target == 0:
            if not r[0x2C] & 0x01:
                self._load(0, fid, ext, data, hit, t)
                return
            if not r[0x60] & 0x04:  # no rollover
                self._overflow(0x40)
                return
        if not r[0x2C] & 0x02:
            self._load(1, fid, ext, data, hit, t)
        else:
            self._overflow(0x80)

    def _overflow(self, bit):
        self.lost += 1
        self.reg[0x2D] |= bit
        self.reg[0x2C] |= 0x20  # ERRIF

    def _idf(self, a):
        r = self.reg
        sid = (r[a] << 3) | (r[a + 1] >> 5)
        eid = ((r[a + 1] & 3) << 16) | (r[a + 2] << 8) | r[a + 3]
        return sid, eid, bool(r[a + 1] & 0x08)

    def _match(self, fid, ext, data):
        """(buffer, filter number) or (-1, -1); remembered per id while the
        filters stay as they are and no mask looks at data bytes."""
        key = (fid, ext)
        hit = self._matches.get(key)
        if hit is None:
            hit = self._match_now(fid, ext, data)
            r = self.reg
            if ext or not (r[0x22] | r[0x23] | r[0x26] | r[0x27]):
                self._matches[key] = hit
        return hit

    def _match_now(self, fid, ext, data):
        r = self.reg
        if ext:
            sid, eid = fid >> 18, fid & 0x3FFFF
        else:
            sid = fid
            eid = ((data[0] if len(data) > 0 else 0) << 8) | (data[1] if len(data) > 1 else 0)
        for buf, ctrl, mask, filters in ((0, 0x60, 0x20, (0, 1)), (1, 0x70, 0x24, (2, 3, 4, 5))):
            rxm = (r[ctrl] >> 5) & 3
            if rxm == 3:
                return buf, filters[0]
            msid, meid, _ = self._idf(mask)
            if not ext:
                meid &= 0xFFFF  # the first two data bytes
            for k in filters:
                fa = (0x00, 0x04, 0x08, 0x10, 0x14, 0x18)[k]
                fsid, feid, fext = self._idf(fa)
                if fext != bool(ext):
                    continue
                if (sid ^ fsid) & msid == 0 and (eid ^ feid) & meid == 0:
                    return buf, k
        return -1, -1

    def _load(self, b, fid, ext, data, hit, t):
        r = self.reg
        base = 0x60 if b == 0 else 0x70
        if ext:
            sid, eid = fid >> 18, fid & 0x3FFFF
            r[base + 1] = sid >> 3
            r[base + 2] = ((sid & 7) << 5) | 0x08 | (eid >> 16)
            r[base + 3] = (eid >> 8) & 0xFF
            r[base + 4] = eid & 0xFF
        else:
            r[base + 1] = fid >> 3
            r[base + 2] = (fid & 7) << 5
            r[base + 3] = 0
            r[base + 4] = 0
        n = len(data)
        r[base + 5] = n
        r[base + 6:base + 6 + n] = data
        r[base + 6 + n:base + 14] = bytes(8 - n)
        if b == 0:
            r[0x60] = (r[0x60] & 0x64) | (0x02 if r[0x60] & 0x04 else 0) | (hit & 1)
        else:
            r[0x70] = (r[0x70] & 0x60) | (hit & 7)
        r[0x2C] |= 1 << b
        self.received += 1
        if self.link is None:  # a virtual board runs for hours: no history there
            self.log.append((t, fid))

    # ---- errors --------------------------------------------------------------
    def _set_counters(self, tec, rec):
        r = self.reg
        r[0x1C] = min(tec, 255)
        r[0x1D] = min(rec, 255)
        old = r[0x2D]
        e = old & 0xC0
        if old & 0x20 and tec > 0:
            e |= 0x20
        if tec > 255:
            if not old & 0x20:
                self.busoff_occ = 0
                self.last_arrival = self.now
            e |= 0x20
            r[0x1C] = 255
        if rec >= 96:
            e |= 0x02
        if tec >= 96:
            e |= 0x04
        if rec >= 96 or tec >= 96:
            e |= 0x01
        if rec >= 128:
            e |= 0x08
        if tec >= 128:
            e |= 0x10
        r[0x2D] = e
        if (e ^ old) & 0x3F:
            r[0x2C] |= 0x20  # ERRIF

    def tx_errors(self, n):
        self._set_counters(self.reg[0x1C] + 8 * n + (256 if self.reg[0x2D] & 0x20 else 0), self.reg[0x1D])

    def rx_errors(self, n):
        self._set_counters(self.reg[0x1C], self.reg[0x1D] + n)

    # ---- SPI -------------------------------------------------------------------
    def transfer(self, tx, rx):
        """One SPI transaction: chip select low, the bytes of tx out (rx in), chip select high."""
        self._spend(len(tx) * 8 * 1000000000 // self.spi_hz + self.call_ns)
        self.readout(tx, rx)
        self.execute(tx)

    def readout(self, tx, rx):
        """What SO carries while tx is clocked in: rx[k] for every k from 1 (SO is high-impedance during
        the instruction byte: rx[0] is left as it is). A read's data depend only on the instruction and
        the address, so tx may be the first bytes of a longer transaction and rx longer than tx: an
        emulated SPI bus (keidrive.target.rp2040js) asks for the whole transaction's answer at its
        second byte. Registers are read as they are now; the instruction takes effect in execute()."""
        if self.dead or self.now < self.ready_at:
            for k in range(len(rx)):
                rx[k] = 0xFF
            return
        self._mode_step()
        r = self.reg
        op = tx[0]
        n = len(rx)
        if op == 0x03 and len(tx) > 1:
            self._read_run(tx[1], rx, 2, n)
        elif op in (0x90, 0x92, 0x94, 0x96):
            self._read_run((0x61, 0x66, 0x71, 0x76)[(op >> 1) & 3], rx, 1, n)
        elif op == 0xA0:
            f = r[0x2C]
            s = (f & 3) | ((r[0x30] & 8) >> 1) | ((f & 4) << 1) | ((r[0x40] & 8) << 1) | ((f & 8) << 2) | \
                ((r[0x50] & 8) << 3) | ((f & 0x10) << 3)
            for k in range(1, n):
                rx[k] = s

    def _read_run(self, a, rx, k0, n):
        """rx[k0:n] from the registers at a on: the address pointer increments and wraps after 0x7F."""
        r = self.reg
        if a + n - k0 <= 0x80 and (a & 0x0F) + n - k0 <= 0x0E:  # within a row, before CANSTAT: one slice
            rx[k0:n] = r[a:a + n - k0]
            return
        for k in range(k0, n):
            rx[k] = r[self._a(a + k - k0)]

    def execute(self, tx):
        """What the instruction in tx does when chip select rises."""
        if self.dead or self.now < self.ready_at:
            return
        self._mode_step()
        r = self.reg
        op = tx[0]
        n = len(tx)
        if op == 0xC0:
            self._por()
            self.ready_at = self.now + 128 * 1000000000 // self.osc_hz
        elif op == 0x02:
            a = tx[1]
            for k in range(2, n):
                self._write(a + k - 2, tx[k], 0xFF)
        elif op in (0x90, 0x92, 0x94, 0x96):
            r[0x2C] &= ~(0x01 if op < 0x94 else 0x02)
        elif op & 0xF8 == 0x40:
            base = (0x31, 0x36, 0x41, 0x46, 0x51, 0x56)[op & 7]
            for k in range(1, n):
                r[base + k - 1] = tx[k]
        elif op & 0xF8 == 0x80:
            if op & 1:
                self._rts()
        elif op == 0x05:
            a = self._a(tx[1])
            mask = tx[2] if a in _BITMOD else 0xFF
            self._write(a, tx[3], mask)
        elif op not in (0x03, 0xA0):
            raise ValueError("MCP2515 model: instruction 0x%02x is not one the driver should send" % op)

    def _write(self, a, v, mask):
        a = self._a(a)
        r = self.reg
        if a in _CONFIG_ONLY and self.opmod() != 4:
            return  # ignored outside configuration mode
        m = mask & _writable(a)
        r[a] = (r[a] & ~m) | (v & m)
        if a < 0x28 or a in (0x60, 0x70):
            self._matches = {}  # a filter, mask or RXM changed
        elif a <= 0x2A:
            self._rate_ok = None  # CNF1-3
        if a == 0x0F:
            for k in range(8):
                r[k * 16 + 0x0F] = r[0x0F]
            if not self.stuck_mode:
                self.mode_at = self.now + self.mode_ns

    def _rts(self):
        r = self.reg
        r[0x30] |= 0x08
        if self.opmod() != 0 or r[0x2D] & 0x20:
            return  # listen-only / bus-off: stays pending
        if self.fail_tx:
            self.tx_errors(1)
            return
        if self.link is None:
            self.sent.append(bytes(r[0x31:0x3E]))
        else:
            sidl = r[0x32]
            if sidl & 0x08:
                fid = (r[0x31] << 21) | ((sidl & 0xE0) << 13) | ((sidl & 3) << 16) | (r[0x33] << 8) | r[0x34]
            else:
                fid = (r[0x31] << 3) | (sidl >> 5)
            self.link.send(fid, bool(sidl & 0x08), bytes(r[0x36:0x36 + min(r[0x35] & 0x0F, 8)]))
        r[0x30] &= ~0x08
        r[0x2C] |= 0x04
