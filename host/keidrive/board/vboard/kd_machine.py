# `machine` of a keidrive virtual dev board. Runs INSIDE the MicroPython unix
# port; kd_agent installs it as sys.modules["machine"] (the unix port's own
# machine module has no CAN, Pin or reset).
#
# CAN follows the upstream machine.CAN API (MicroPython v1.28+): CAN(id,
# bitrate, mode=...), set_filters, recv(list), send, state, restart, deinit,
# with the controller's wire being a keidrive virtual CAN hub (24-byte frame
# records over a Unix socket, see keidrive/record.py). MODE_SILENT never puts
# a frame on the bus; filters are applied as a controller's acceptance filters.

import socket
import struct
import time

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


def _configure(bus, platform):
    global _BUS, _PLATFORM
    _BUS = None if bus in ("", "-") else bus
    _PLATFORM = platform


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
            return self._v
        self._v = 1 if v else 0

    __call__ = value

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0

    def irq(self, handler=None, trigger=3):
        return None

    def __repr__(self):
        return "Pin(%d)" % self.id


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


# ---- CAN ----------------------------------------------------------------------


class CAN:
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
        if id != 0:
            raise ValueError("invalid CAN id %r (this board has controller 0)" % (id,))
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
        if _BUS is None:
            self._lost = True
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # the unix port's connect() wants a packed sockaddr_un
            s.connect(struct.pack("H", socket.AF_UNIX) + _BUS.encode() + b"\0")
        except OSError:
            s.close()
            self._lost = True
            return
        s.setblocking(False)
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
        rf = (_F_EXT if flags & self.FLAG_EXT_ID else 0) | (_F_RTR if flags & self.FLAG_RTR else 0)
        rec = bytearray(_REC)
        rec[8] = id & 0xFF
        rec[9] = (id >> 8) & 0xFF
        rec[10] = (id >> 16) & 0xFF
        rec[11] = (id >> 24) & 0xFF
        rec[12] = rf
        rec[13] = n
        if not flags & self.FLAG_RTR:
            for k in range(n):
                rec[16 + k] = data[k]
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
