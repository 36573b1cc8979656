"""The physical inputs of the 10 Hz tick, read from the decoded raw values.

Internal units: speed 0.01 km/h, acceleration cm/s2 over the last second,
rpm, pedal 0.1 %, boost 0.1 kPa, temperature 0.1 degC. The speed, its
acceleration and which source they come from are keifw/fusion.py's (its
``judge`` writes them into the same readings); here the engine's: rpm,
pedal, boost, temperature and whether the engine runs. A temperature more
than 2 degC from the last accepted one is held back until it has held for
a second.

The engine runs when its ``running`` signal says so, or its valid rpm is
above 0, or its valid fuel rate is, or an OBD-II client said so within the
last second (``O_EXT_RUNNING``): idle time and idle fuel come from the same
rule, whatever the car offers.

The reading is one viper call (``read``, the tick's) over the raw values: on a
Cortex-M the same in Python cost about 18k instructions per tick. Its
readings are the words of ``Inputs.o`` (the O_* offsets).
"""

from array import array

import micropython
from micropython import const

from .fixed import scale_of
from .vehicle import KIND_EV


def _scale(gen, slot, unit):
    return scale_of(gen, slot, unit) if slot >= 0 else (0, 0, 1)


# Inputs.q: messages, slots (-1: absent) and (A, B, C) conversions, by offset
_Q_LEN = const(22)
# Inputs.o: this tick's readings (fusion.O_* for the speed's), then state
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
O_FAULTY = const(10)      # speed source rows found faulty (fusion)
O_LEADER = const(11)      # the trusted speed's source group, -1 none (fusion)
O_LEAD_INTEG = const(12)  # who integrates its distance (fusion.INTEG_*)
# 13: fusion's acceleration history position; 14..16: the temperature's
# (last accepted, a candidate that differs, ticks it has held)
O_EXT_RUNNING = const(17)  # an OBD-II client's word on the engine: 1 running
O_EXT_AGE = const(18)      # ticks since it said so
O_TICK_INT = const(19)     # loop._count: the last tick's trusted speed is integrated at the tick
O_V_PREV = const(20)       # loop._count: that speed
O_FALLBACK = const(21)     # the trusted speed is not the car's first source (fusion)
_O_LEN = const(22)
EXT_FRESH_TICKS = const(10)


@micropython.viper
def read(values: ptr32, vb: ptr8, q: ptr32, o: ptr32):
    """This tick's engine readings into o (an Inputs' ``o``; q: its ``q``)
    from the raw values and the VALID flags vb. Raw words are sign-fixed (a
    64-bit port's ptr32 loads zero-extend)."""
    m = q[0]
    mt = q[1]
    eng_ok = 0
    if m >= 0 and m < 0x10000 and vb[m] and (mt < 0 or mt >= 0x10000 or vb[mt]):
        eng_ok = 1
    o[3] = eng_ok
    k = 0
    while k < 4:  # rpm, pedal, boost, temp: (slot, A, B, C) at 4, 8, 12, 16
        base = 4 + 4 * k
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
        o[4 + (k if k == 0 else k + 1)] = r  # O_RPM, O_PEDAL, O_BOOST, O_TEMP
        k += 1
    m = q[2]
    pedal_ok = 0
    if m >= 0 and m < 0x10000 and vb[m]:
        pedal_ok = 1
    else:
        o[6] = -1
    o[5] = pedal_ok
    # the engine runs: its running signal, a valid rpm or fuel rate above 0,
    # or an OBD-II client's word of the last second
    running = 0
    sl = q[3]
    if (sl >= 0 and sl < 0x10000 and values[sl]) or (eng_ok and o[4] > 0):
        running = 1
    else:
        m = q[20]
        sl = q[21]
        if m >= 0 and m < 0x10000 and vb[m] and sl >= 0 and sl < 0x10000:
            x = values[sl]
            if (x >> 31) == 1:
                x -= (x >> 31) << 16 << 16
            if x > 0:
                running = 1
    if o[18] < 10:  # EXT_FRESH_TICKS
        o[18] += 1
        if o[17]:
            running = 1
    o[9] = running


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
        q[0] = roles.msg["rpm"] if not ev else roles.msg["motor_temp"]
        q[1] = m_temp
        q[2] = roles.msg["pedal"]
        q[3] = sl["running"]
        for base, slot, unit in ((4, sl["rpm"] if not ev else -1, 1), (8, sl["pedal"], 10),
                                 (12, sl["boost"], 10), (16, ts, 10)):
            q[base] = slot
            q[base + 1:base + 4] = array("i", _scale(gen, slot, unit))
        q[20] = self.m_fuel
        q[21] = sl["fuel_rate"]
        self.q = q
        o = array("i", bytes(4 * _O_LEN))
        o[O_LEADER] = -1
        o[O_EXT_AGE] = EXT_FRESH_TICKS  # no word from a client yet
        self.o = o

    # the readings lines and transmit use
    @property
    def speed_ok(self):
        return self.o[O_SPEED_OK] != 0

    @property
    def v(self):
        return self.o[O_V]

    def ext_running(self, running):
        """An OBD-II client's word on the engine (rpm or fuel above 0): it
        counts for the next second of ticks."""
        self.o[O_EXT_RUNNING] = 1 if running else 0
        self.o[O_EXT_AGE] = 0
