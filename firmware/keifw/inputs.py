"""The physical inputs of the 10 Hz tick, read from the decoded raw values.

Internal units: speed 0.01 km/h, acceleration cm/s2 over the last second,
rpm, pedal 0.1 %, boost 0.1 kPa, temperature 0.1 degC. Speed is
plausible while it agrees with the mean wheel speed within 2 m/s (7.2 km/h):
implausible after 3 disagreeing ticks, plausible again after 10 agreeing. A temperature more than 2 degC from
the last accepted one is held back until it has held for a second.

The reading is one viper call (``read``, the tick's) over the raw values: on a
Cortex-M the same in Python cost about 18k instructions per tick. Its
readings are the words of ``Inputs.o`` (the O_* offsets).
"""

from array import array

import micropython
from micropython import const

from .fixed import scale_of
from .vehicle import KIND_EV

_WHEEL_TOLERANCE = const(720)  # 0.01 km/h


def _scale(gen, slot, unit):
    return scale_of(gen, slot, unit) if slot >= 0 else (0, 0, 1)


# Inputs.q: slots (-1: absent), messages and (A, B, C) conversions, by offset
_Q_LEN = const(33)
# Inputs.o: this tick's readings, then the plausibility state
O_SPEED_OK = const(0)
O_V = const(1)
O_A = const(2)
O_ENG_OK = const(3)
O_RPM = const(4)
O_PEDAL_OK = const(5)
O_PEDAL = const(6)
O_BOOST = const(7)
O_TEMP = const(8)
O_RUNNING = const(9)
O_IMPLAUSIBLE = const(10)
# 11..13: speed plausibility state; 14..16: the temperature's (last accepted,
# a candidate that differs, ticks it has held)
_O_LEN = const(17)


@micropython.viper
def read(values: ptr32, vb: ptr8, q: ptr32, o: ptr32, vh: ptr32):
    """This tick's readings into o (an Inputs' ``o``; q, vh: its ``q`` and
    ``vhist``) from the raw values and the VALID flags vb. Raw words are
    sign-fixed (a 64-bit port's ptr32 loads zero-extend)."""
    m = q[0]
    sp_valid = 0
    if m >= 0 and m < 0x10000 and vb[m]:
        sp_valid = 1
    v = 0
    if sp_valid:
        x = values[q[1]]
        if (x >> 31) == 1:
            x -= (x >> 31) << 16 << 16
        v = (x * q[2] + q[3]) // q[4]
        m = q[5]
        if m >= 0 and m < 0x10000 and vb[m]:
            wsum = 0
            k = 6
            while k < 10:
                x = values[q[k]]
                if (x >> 31) == 1:
                    x -= (x >> 31) << 16 << 16
                wsum += x
                k += 1
            wb = q[11]  # the offset, sign-fixed as the raw words
            if (wb >> 31) == 1:
                wb -= (wb >> 31) << 16 << 16
            wv = (wsum * q[10] + 4 * wb) // q[12] // 4  # four wheels, four offsets
            dv = wv - v
            if dv > 720 or dv < -720:  # _WHEEL_TOLERANCE
                o[12] = 0
                o[11] += 1
                if o[11] >= 3:
                    o[10] = 1
            else:
                o[11] = 0
                o[12] += 1
                if o[12] >= 10:
                    o[10] = 0
    speed_ok = 1 if sp_valid and not o[10] else 0
    o[0] = speed_ok
    o[1] = v
    # acceleration over the last second, cm/s2
    vpos = o[13]
    a = 0
    if speed_ok:
        a = (v - vh[vpos]) * 5 // 18
        vh[vpos] = v
    else:
        k = 0
        while k < 10:
            vh[k] = v
            k += 1
    o[2] = a
    o[13] = vpos + 1 if vpos < 9 else 0
    m = q[13]
    mt = q[14]
    eng_ok = 0
    if m >= 0 and m < 0x10000 and vb[m] and (mt < 0 or mt >= 0x10000 or vb[mt]):
        eng_ok = 1
    o[3] = eng_ok
    k = 0
    while k < 4:  # rpm, pedal, boost, temp: (slot, A, B, C) at 15, 20, 24, 28
        base = 15
        dst = 4
        if k == 1:
            base = 20
            dst = 6
        elif k == 2:
            base = 24
            dst = 7
        elif k == 3:
            base = 28
            dst = 8
        sl = q[base]
        r = -1 if k < 3 else 0
        if sl >= 0 and sl < 0x10000:
            x = values[sl]
            if (x >> 31) == 1:
                x -= (x >> 31) << 16 << 16
            b = q[base + 2]  # a negative offset (degC) loads zero-extended too
            if (b >> 31) == 1:
                b -= (b >> 31) << 16 << 16
            r = (x * q[base + 1] + b) // q[base + 3]
        if k == 3 and sl >= 0 and sl < 0x10000:
            # a coolant / motor temperature moves slowly: a reading more than
            # 2 degC from the last accepted (a foreign frame on an id without
            # CHECKSUM) is held back until it has held for 1 s
            if o[16] == 0:
                o[14] = r
                o[16] = 1
            else:
                dt = r - o[14]
                if dt > 20 or dt < -20:
                    dc = r - o[15]
                    if dc > 20 or dc < -20:
                        o[15] = r
                        o[16] = 1
                    else:
                        o[16] += 1
                    if o[16] >= 11:
                        o[14] = r
                        o[16] = 1
                    else:
                        r = o[14]
                else:
                    o[14] = r
                    o[16] = 1
        o[dst] = r
        k += 1
    m = q[19]
    pedal_ok = 0
    if m >= 0 and m < 0x10000 and vb[m]:
        pedal_ok = 1
    else:
        o[6] = -1
    o[5] = pedal_ok
    sl = q[32]
    o[9] = 1 if sl >= 0 and sl < 0x10000 and values[sl] else 0


class Inputs:
    def __init__(self, gen, roles):
        sl = roles.slot
        ev = roles.kind == KIND_EV
        ts = sl["coolant"] if sl["coolant"] >= 0 else sl["motor_temp"]
        self.engine = not ev
        # messages whose validity each input needs (-1: absent)
        self.m_fuel = roles.msg["fuel_rate"]
        m_temp = roles.msg["coolant"] if sl["coolant"] >= 0 else roles.msg["motor_temp"]
        q = array("i", bytes(4 * _Q_LEN))
        q[0] = roles.msg["speed"]
        q[1] = sl["speed"]
        q[2:5] = array("i", _scale(gen, sl["speed"], 100))
        q[5] = roles.msg["wheel_fl"]
        for k, role in enumerate(("wheel_fl", "wheel_fr", "wheel_rl", "wheel_rr")):
            q[6 + k] = sl[role]
        q[10:13] = array("i", _scale(gen, sl["wheel_fl"], 100))
        q[13] = roles.msg["rpm"] if not ev else roles.msg["motor_temp"]
        q[14] = m_temp
        for base, slot, unit in ((15, sl["rpm"] if not ev else -1, 1), (20, sl["pedal"], 10),
                                 (24, sl["boost"], 10), (28, ts, 10)):
            q[base] = slot
            q[base + 1:base + 4] = array("i", _scale(gen, slot, unit))
        q[19] = roles.msg["pedal"]
        q[32] = sl["running"]
        self.q = q
        self.o = array("i", bytes(4 * _O_LEN))
        self.vhist = array("i", bytes(4 * 10))

    # the readings lines and transmit use
    @property
    def speed_ok(self):
        return self.o[O_SPEED_OK] != 0

    @property
    def v(self):
        return self.o[O_V]

    @property
    def implausible(self):
        return self.o[O_IMPLAUSIBLE] != 0
