"""SAE J1979 Mode 01 replies as this client reads them: the data length of
each PID it knows, the value slot each fills with the raw value (scaled by
the PID's own definition, decoded by the users: keifw/obdfuel.py), and the
supported-PID maps. Nothing allocates."""

from micropython import const

# value slots (raw as the PID scales it) and the PID that fills each
PIDS = b"\x0d\x0c\x0b\x0f\x10\x44\x5e\x05\x2f\xa6\x03\x11"
V_SPEED = const(0)
V_RPM = const(1)
V_MAP = const(2)
V_IAT = const(3)
V_MAF = const(4)
V_LAMBDA = const(5)
V_FUEL_RATE = const(6)
V_COOLANT = const(7)
V_FUEL_LEVEL = const(8)
V_ODO = const(9)
V_STATUS = const(10)
V_THROTTLE = const(11)
N_V = const(12)
# data bytes per Mode 01 PID this client reads (0: unknown, stop parsing)
LEN = bytearray(256)
for _p in (0x04, 0x05, 0x0B, 0x0D, 0x0F, 0x11, 0x2F, 0x46):
    LEN[_p] = 1
for _p in (0x03, 0x0C, 0x10, 0x44, 0x5E):
    LEN[_p] = 2
for _p in (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0, 0xE0, 0xA6):
    LEN[_p] = 4
SLOT = bytearray(b"\xff" * 256)
for _i in range(len(PIDS)):
    SLOT[PIDS[_i]] = _i
# what a status line's missing calls a value slot's PID
NAMES = tuple(b"OBD-II 0x%02X" % pid for pid in PIDS)
REPLY = const(1 << N_V)  # parse_01's answer: it carried PIDs (besides the value slots it filled)



def parse_01(v, sup, s, b, n, src):
    """A Mode 01 reply b[:n] (0x41, then PID, data ...) of ECU slot s: the
    values of slots it is the source of (src: per value slot the ECU slot,
    0xFF any) into v, supported-PID maps into sup (32 bytes per slot). The
    bits of the value slots it filled, and REPLY if it carried any PID (0:
    nothing); parsing stops at a PID it does not know."""
    i = 1
    got = 0
    while i < n:
        pid = b[i]
        m = LEN[pid]
        if m == 0 or i + 1 + m > n:
            break
        a = b[i + 1]
        if pid & 0x1F == 0:  # a supported-PID map: PIDs pid+1 .. pid+32
            o = 32 * s + pid // 8
            for k in range(4):
                sup[o + k] = b[i + 1 + k]
        slot = SLOT[pid]
        if slot != 0xFF and (src[slot] == s or src[slot] == 0xFF):
            if m == 1 or pid == 0x03:  # 0x03: fuel system 1 (A); B is system 2
                v[slot] = a
            elif m == 2:
                v[slot] = (a << 8) | b[i + 2]
            elif a < 0x20:  # odometer: 0.1 km, kept below 2**29
                v[slot] = (a << 24) | (b[i + 2] << 16) | (b[i + 3] << 8) | b[i + 4]
            got |= 1 << slot
        got |= REPLY
        i += 1 + m
    return got
