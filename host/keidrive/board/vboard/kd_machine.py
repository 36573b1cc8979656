# `machine` of a keidrive virtual dev board. Runs INSIDE the MicroPython unix
# port; kd_agent installs it as sys.modules["machine"] (the unix port's own
# machine module has no CAN, Pin or reset).
#
# CAN follows the upstream machine.CAN API (MicroPython v1.28+): CAN(id,
# bitrate, mode=...), set_filters, recv(list), send, state, restart, deinit,
# with the controller's wire being a keidrive virtual CAN hub (24-byte frame
# records over a Unix socket, see keidrive/io/record.py). MODE_SILENT never puts
# a frame on the bus; filters are applied as a controller's acceptance filters.

import socket
import struct
import time

# The MCP2515 model's source, read while this folder is still reachable ("/"
# becomes the board folder) and compiled only when a program opens the SPI bus
# it is wired to: compiling it here would lengthen the engine's start, where a
# Ctrl-C still stops the engine instead of the program.
with open(__file__.rsplit("/", 1)[0] + "/kd_mcp2515.py") as _f:
    _MCP_SOURCE = _f.read()
del _f


def _mcp_chip(spi_hz):
    g = {"__name__": "kd_mcp2515"}
    exec(_MCP_SOURCE, g)
    chip = g["Chip"](osc_hz=8000000, bitrate=500000, spi_hz=spi_hz)
    chip.link = _Wire()
    chip.clock_ns = _ns
    return chip

try:
    import errno

    _EAGAIN = errno.EAGAIN
except ImportError:  # pragma: no cover
    _EAGAIN = 11

_BUS = None
_PLATFORM = "esp32"
_hard_reset = False
_open = []

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_REC = 24
_F_EXT = 0x01
_F_RTR = 0x02
_F_ERR = 0x04
_F_CTRL = 0x80


# machine.CAN as upstream has it (v1.28): only these ports have it (ESP32 TWAI
# is not merged), with controllers numbered from 1 (extmod/machine_can.c)
_CAN_CONTROLLERS = {"pyboard": 2, "mimxrt": 2, "alif": 1}


_WIRING = None  # (SPI bus id, CS pin, INT pin) of the board's MCP2515, or None
_MCP = None     # the MCP2515 on that bus (kd_mcp2515.Chip), made when its SPI bus is opened


def _configure(bus, platform, wiring="-"):
    global _BUS, _PLATFORM, _WIRING
    _BUS = None if bus in ("", "-") else bus
    _PLATFORM = platform
    _WIRING = None if wiring in ("", "-") else tuple(int(x) for x in wiring.split(","))
    g = globals()
    if platform in _CAN_CONTROLLERS:
        g["CAN"] = _CAN
    elif "CAN" in g:
        del g["CAN"]  # `from machine import CAN` fails, as on the real port


def _shutdown():
    for c in _open:
        try:
            c.deinit()
        except Exception:
            pass


# ---- resets and chip-level stand-ins -----------------------------------------


def reset():
    """Hard reset: the virtual board restarts its interpreter (boot.py, main.py)."""
    global _hard_reset
    _hard_reset = True
    raise SystemExit


def soft_reset():
    raise SystemExit


def reset_cause():
    return SOFT_RESET


def bootloader(*args):
    raise OSError(95, "a keidrive virtual board has no ROM bootloader")


def unique_id():
    return b"\x6b\x64\x76\x62\x30\x31"  # "kdvb01"


def freq(*args):
    return 240000000


def idle():
    time.sleep_ms(1)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def lightsleep(ms=None):
    time.sleep_ms(ms or 0)


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        if not isinstance(id, int) or not 0 <= id <= 48:
            raise ValueError("invalid pin")
        self.id = id
        self._v = 0
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if mode != -1:
            self.mode = mode
        if value is not None:
            self._v = 1 if value else 0

    def value(self, v=None):
        if v is None:
            if _MCP is not None and self.id == _WIRING[2]:
                return _MCP.int_level()  # the MCP2515's INT output is wired here
            return self._v
        self._v = 1 if v else 0

    __call__ = value

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0

    def irq(self, handler=None, trigger=3, hard=False):
        # the MCP2515's INT: its falling edge runs handler (hard or soft) while
        # the program sleeps (see _Time); other pins have no interrupts
        if _MCP is not None and self.id == _WIRING[2]:
            _MCP.int.handler = handler
        return None

    def __repr__(self):
        return "Pin(%d)" % self.id


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


# ---- the virtual bus: hub socket and frame records ------------------------------


def _hub_socket():
    """A non-blocking connection to the board's CAN hub, or None."""
    if _BUS is None:
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # the unix port's connect() wants a packed sockaddr_un
        s.connect(struct.pack("H", socket.AF_UNIX) + _BUS.encode() + b"\0")
    except OSError:
        s.close()
        return None
    s.setblocking(False)
    return s


def _record(ident, ext, rtr, data):
    rec = bytearray(_REC)
    rec[8] = ident & 0xFF
    rec[9] = (ident >> 8) & 0xFF
    rec[10] = (ident >> 16) & 0xFF
    rec[11] = (ident >> 24) & 0xFF
    rec[12] = (_F_EXT if ext else 0) | (_F_RTR if rtr else 0)
    rec[13] = len(data)
    if not rtr:
        for k in range(len(data)):
            rec[16 + k] = data[k]
    return rec


class _Wire:
    """The MCP2515's side of the virtual bus: frames in and out as records."""

    def __init__(self):
        self.sock = None
        self.inbox = b""

    def records(self):
        """[(timestamp_us, id, extended, data)] of the data frames that arrived since the last call."""
        if self.sock is None:
            self.sock = _hub_socket()
            if self.sock is None:
                return ()
        try:
            data = self.sock.recv(4096)
        except OSError as e:
            if e.errno == _EAGAIN:
                return ()
            data = b""
        if not data:
            self.sock.close()
            self.sock = None
            return ()
        buf = self.inbox + data
        n = len(buf) // _REC * _REC
        self.inbox = buf[n:]
        out = []
        for p in range(0, n, _REC):
            rf = buf[p + 12]
            if rf & (_F_CTRL | _F_ERR | _F_RTR):
                continue
            ident = buf[p + 8] | (buf[p + 9] << 8) | (buf[p + 10] << 16) | (buf[p + 11] << 24)
            ts = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24) | (buf[p + 4] << 32)
            out.append((ts, ident, bool(rf & _F_EXT), buf[p + 16:p + 16 + min(buf[p + 13], 8)]))
        return out

    def send(self, ident, ext, data):
        if self.sock is None:
            return
        try:
            self.sock.setblocking(True)
            self.sock.write(_record(ident, ext, False, data))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            self.sock = None


def _ns():
    return time.ticks_us() * 1000


_UART_CMD = 5  # keidrive.io.record.CONTROL_UART: bytes a UART received


class UART:
    """machine.UART of the virtual board, for a GNSS module: what it receives
    is the UART records on the board's bus (keidrive run --route --bus
    keidrive:NAME puts a simulated module's NMEA there, beside the frames);
    what it sends goes nowhere. Non-blocking reads, as with timeout=0; a
    full receive buffer (``rxbuf``) drops the newer bytes, as a UART does."""

    def __init__(self, id, baudrate=9600, *, tx=None, rx=None, timeout=0, rxbuf=256, **kw):
        self.id = id
        self.baudrate = baudrate
        self.rxbuf = rxbuf
        self.sock = None
        self.inbox = b""
        self.pending = bytearray()
        self.overruns = 0

    def _fill(self):
        if self.sock is None:
            self.sock = _hub_socket()
            if self.sock is None:
                return
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError as e:
                if e.errno == _EAGAIN:
                    return
                data = b""
            if not data:
                self.sock.close()
                self.sock = None
                return
            buf = self.inbox + data
            n = len(buf) // _REC * _REC
            self.inbox = buf[n:]
            for p in range(0, n, _REC):
                if buf[p + 12] == _F_CTRL and buf[p + 8] == _UART_CMD:
                    chunk = buf[p + 16:p + 16 + min(buf[p + 13], 8)]
                    room = self.rxbuf - len(self.pending)
                    if room < len(chunk):
                        self.overruns += len(chunk) - max(room, 0)
                        chunk = chunk[:max(room, 0)]
                    self.pending.extend(chunk)

    def any(self):
        self._fill()
        return len(self.pending)

    def readinto(self, buf, nbytes=None):
        self._fill()
        n = min(len(buf) if nbytes is None else nbytes, len(self.pending))
        if not n:
            return None
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def read(self, nbytes=-1):
        self._fill()
        n = len(self.pending) if nbytes is None or nbytes < 0 else min(nbytes, len(self.pending))
        if not n:
            return None
        out = bytes(self.pending[:n])
        self.pending = self.pending[n:]
        return out

    def write(self, data):
        return len(data)

    def deinit(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class SPI:
    """machine.SPI: the bus the board's MCP2515 is wired to answers (the
    chip model kd_mcp2515, on the virtual CAN bus at 500 kbit/s with an 8 MHz
    crystal); any other bus has nothing on it (MISO reads 0xFF)."""

    def __init__(self, id, baudrate=1000000, polarity=0, phase=0, bits=8, firstbit=0, sck=None, mosi=None,
                 miso=None):
        global _MCP
        self.chip = None
        if _WIRING is not None and id == _WIRING[0]:
            if _MCP is None:
                _MCP = _mcp_chip(baudrate)
            self.chip = _MCP

    def write(self, b):
        if self.chip is not None:
            self.chip.transfer(b, bytearray(len(b)))

    def write_readinto(self, t, r):
        if self.chip is not None:
            self.chip.transfer(t, r)
        else:
            for k in range(len(r)):
                r[k] = 0xFF

    def deinit(self):
        pass


class _Time:
    """The time module as a board's program sees it: sleeping runs pending
    soft IRQs (the MCP2515's INT) as a port's event-poll hook does, waking
    when the next frame reaches the chip."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def sleep_us(self, us):
        real = self._real
        end = real.ticks_add(real.ticks_us(), int(us))
        while True:
            left = real.ticks_diff(end, real.ticks_us())
            if left <= 0:
                return
            if _MCP is not None and _MCP.int.handler is not None:
                _MCP.int_level()  # frames due by now arrive in the chip
                _MCP._run_irq()  # and a falling INT runs the handler
                s = _MCP.schedule
                if _MCP.next < len(s):
                    left = min(left, max(1, (s[_MCP.next][0] - _MCP.now) // 1000))
            real.sleep_us(left)

    def sleep_ms(self, ms):
        self.sleep_us(int(ms) * 1000)

    def sleep(self, s):
        self.sleep_us(int(s * 1000000))


# ---- CAN ----------------------------------------------------------------------


class _CAN:
    MODE_NORMAL = 0
    MODE_SLEEP = 1
    MODE_LOOPBACK = 2
    MODE_SILENT = 3
    MODE_SILENT_LOOPBACK = 4

    STATE_STOPPED = 0
    STATE_ACTIVE = 1
    STATE_WARNING = 2
    STATE_PASSIVE = 3
    STATE_BUS_OFF = 4

    FLAG_RTR = 1
    FLAG_EXT_ID = 2
    FLAG_UNORDERED = 4

    RECV_ERR_FULL = 1
    RECV_ERR_OVERRUN = 2

    IRQ_RX = 1
    IRQ_TX = 2
    IRQ_STATE = 4

    FILTERS_MAX = 16
    TX_QUEUE_LEN = 1

    def __init__(self, id, *args, **kwargs):
        if not isinstance(id, int) or not 1 <= id <= _CAN_CONTROLLERS.get(_PLATFORM, 0):
            raise ValueError("CAN(%s) doesn't exist" % (id,))
        self.id = id
        self._sock = None
        self._inbox = b""
        self._pos = 0
        self._filters = ()  # receive nothing until set_filters, as upstream
        self._mode = self.MODE_NORMAL
        self._lost = False
        self._arg = None
        self._full = None
        self._own = []
        self.init(*args, **kwargs)

    # -- configuration --
    def init(self, bitrate, mode=0, sample_point=75, sjw=1, tseg1=None, tseg2=None):
        if not 1000 <= bitrate <= 1000000:
            raise ValueError("bitrate out of range")
        self.bitrate = bitrate
        self._mode = mode
        self._connect()
        if self not in _open:
            _open.append(self)

    def _connect(self):
        self._close()
        self._lost = False
        s = _hub_socket()
        if s is None:
            self._lost = True
            return
        self._sock = s
        self._inbox = b""
        self._pos = 0

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def deinit(self):
        self._close()
        self._mode = -1
        if self in _open:
            _open.remove(self)

    def set_filters(self, filters):
        if filters is None:
            self._filters = None
            return
        fl = []
        for f in filters:
            ident, mask, flags = f[0], f[1], f[2]
            limit = 0x1FFFFFFF if flags & self.FLAG_EXT_ID else 0x7FF
            if not (0 <= ident <= limit and 0 <= mask <= limit):
                raise ValueError("invalid id")
            fl.append((ident & mask, mask, flags & self.FLAG_EXT_ID, flags & self.FLAG_RTR))
        if len(fl) > self.FILTERS_MAX:
            raise ValueError("too many filters")
        self._filters = tuple(fl)

    def _accept(self, ident, flags):
        fs = self._filters
        if fs is None:
            return True
        for fid, mask, ext, rtr in fs:
            if (ident & mask) == fid and ext == (flags & self.FLAG_EXT_ID) and (not rtr or flags & self.FLAG_RTR):
                return True
        return False

    # -- receive --
    def _fill(self):
        if self._sock is None:
            return False
        try:
            data = self._sock.recv(4096)
        except OSError as e:
            if e.errno == _EAGAIN:
                return False
            self._bus_lost()
            return False
        if not data:
            self._bus_lost()
            return False
        if self._pos < len(self._inbox):
            self._inbox = self._inbox[self._pos:] + data
        else:
            self._inbox = data
        self._pos = 0
        return True

    def _bus_lost(self):
        self._close()
        self._lost = True

    def recv(self, arg=None):
        while True:
            if self._own:
                raw = self._own.pop(0)
            else:
                if len(self._inbox) - self._pos < _REC and not self._fill():
                    return None
                if len(self._inbox) - self._pos < _REC:
                    return None
                p = self._pos
                raw = self._inbox[p:p + _REC]
                self._pos = p + _REC
            rf = raw[12]
            if rf & (_F_CTRL | _F_ERR):
                continue
            ident = raw[8] | (raw[9] << 8) | (raw[10] << 16) | (raw[11] << 24)
            flags = (self.FLAG_EXT_ID if rf & _F_EXT else 0) | (self.FLAG_RTR if rf & _F_RTR else 0)
            if not self._accept(ident, flags):
                continue
            dlc = raw[13]
            if dlc > 8:
                dlc = 8
            if arg is None:
                res = [0, memoryview(bytearray(8)), 0, 0]
                full = res[1]
            else:
                res = arg
                if arg is not self._arg:
                    self._arg = arg
                    self._full = arg[1]
                full = self._full
            for k in range(dlc):
                full[k] = 0 if rf & _F_RTR else raw[16 + k]
            res[0] = ident
            res[1] = full[:dlc]
            res[2] = flags
            res[3] = 0
            return res

    # -- transmit --
    def send(self, id, data, flags=0):
        if self._mode == -1 or self._lost:
            raise OSError(5, "CAN controller bus-off or stopped")
        if self._mode in (self.MODE_SILENT, self.MODE_SLEEP):
            raise OSError(1, "CAN controller is in silent mode (listen only)")
        n = len(data)
        if n > 8:
            raise ValueError("data too long")
        rec = _record(id, flags & self.FLAG_EXT_ID, flags & self.FLAG_RTR, data)
        if self._mode in (self.MODE_LOOPBACK, self.MODE_SILENT_LOOPBACK):
            self._own.append(bytes(rec))
            if self._mode == self.MODE_SILENT_LOOPBACK:
                return 0
        try:
            self._sock.setblocking(True)
            self._sock.write(rec)
            self._sock.setblocking(False)
        except OSError:
            self._bus_lost()
            return None
        return 0

    def cancel_send(self, index):
        return False

    # -- errors --
    def state(self):
        if self._mode == -1:
            return self.STATE_STOPPED
        if self._lost:
            return self.STATE_BUS_OFF
        return self.STATE_ACTIVE

    def restart(self):
        if self._mode != -1 and self._lost:
            self._connect()

    def get_counters(self, lst=None):
        v = [0, 0, 0, 0, 0, 0, 0, 0]
        if lst is not None:
            lst[:] = v
            return lst
        return v

    def irq(self, handler=None, trigger=0, hard=False):
        return None

    def __repr__(self):
        return "CAN(%d, bitrate=%d, virtual bus %s)" % (self.id, self.bitrate, _BUS or "none")


CAN = _CAN
