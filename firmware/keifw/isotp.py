"""ISO 15765-2 receive side of an OBD-II tester, one reassembly per ECU.

A tester sends only single-frame requests; what it must receive are single
frames and first + consecutive frames (Mode 09 VIN and calibration IDs,
multi-PID Mode 01 replies). ``Rx.feed`` takes one classic-CAN frame of one
ECU and says what happened; after a first frame the caller sends the flow
control ``FC_CTS`` (continue, block size 0: all at once, STmin 0). A gap of
more than N_Cr between frames, a sequence number out of order or a length
over the buffer abandons the message. Preallocated; nothing allocates.
"""

from micropython import const

from .compat import tdiff

MAX_LEN = const(64)         # longest message kept: VIN (20), CALIDs (4 x 16)
N_CR_US = const(150000)     # ISO 15765-4: consecutive frame within 150 ms

# Rx.feed results
NOTHING = const(0)   # not for us (a flow control from the ECU, padding)
DONE = const(1)      # a whole message is in buf[:length]
MORE = const(2)      # part of a multi-frame message
SEND_FC = const(3)   # a first frame: send flow control now
BAD = const(4)       # malformed or out of sequence: abandoned
OVERFLOW = const(5)  # longer than MAX_LEN: send FC_OVERFLOW, abandoned

# flow control frames the tester sends (padded to 8 bytes, ISO 15765-4)
FC_CTS = b"\x30\x00\x00\x00\x00\x00\x00\x00"
FC_OVERFLOW = b"\x32\x00\x00\x00\x00\x00\x00\x00"


class Rx:
    def __init__(self):
        self.buf = bytearray(MAX_LEN)
        self.length = 0   # of the message being received / just completed
        self.got = 0
        self.seq = 0      # next consecutive frame's sequence number
        self.active = False
        self.t_last = 0

    def feed(self, data, dlc, t):
        """One frame (data: 8-byte buffer, dlc bytes valid) at firmware time t."""
        if dlc < 1:
            return BAD
        pci = data[0] >> 4
        if pci == 0:  # single frame
            n = data[0] & 0x0F
            self.active = False
            if n == 0 or n > 7 or n > dlc - 1:
                return BAD
            buf = self.buf
            for k in range(n):
                buf[k] = data[1 + k]
            self.length = n
            return DONE
        if pci == 1:  # first frame
            n = ((data[0] & 0x0F) << 8) | (data[1] if dlc > 1 else 0)
            self.active = False
            if dlc < 8 or n < 8:
                return BAD
            if n > MAX_LEN:
                return OVERFLOW
            buf = self.buf
            for k in range(6):
                buf[k] = data[2 + k]
            self.length = n
            self.got = 6
            self.seq = 1
            self.active = True
            self.t_last = t
            return SEND_FC
        if pci == 2:  # consecutive frame
            if not self.active:
                return NOTHING  # the tail of something abandoned: ignore
            if (data[0] & 0x0F) != self.seq or tdiff(t, self.t_last) > N_CR_US:
                self.active = False
                return BAD
            got = self.got
            n = self.length - got
            n = min(n, 7)
            if dlc - 1 < n:
                self.active = False
                return BAD
            buf = self.buf
            for k in range(n):
                buf[got + k] = data[1 + k]
            self.got = got + n
            self.seq = (self.seq + 1) & 0x0F
            self.t_last = t
            if self.got >= self.length:
                self.active = False
                return DONE
            return MORE
        return NOTHING  # a flow control (or a reserved PCI) is not a reply

    def expired(self, t):
        """A multi-frame message whose next frame is overdue (abandoned)."""
        if self.active and tdiff(t, self.t_last) > N_CR_US:
            self.active = False
            return True
        return False
