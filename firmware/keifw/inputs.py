"""The physical inputs of the 10 Hz tick, read from the decoded raw values.

Internal units: speed 0.01 km/h, acceleration cm/s2 over the last second,
rpm, pedal 0.1 %, boost 0.1 kPa, temperature 0.1 degC. Speed is
plausible while it agrees with the mean wheel speed within 2 m/s (7.2 km/h):
implausible after 3 disagreeing ticks, plausible again after 10 agreeing.
"""

from array import array

from micropython import const

from .fixed import scale_of
from .vehicle import KIND_EV

_WHEEL_TOLERANCE = const(720)  # 0.01 km/h


def _scale(gen, slot, unit):
    return scale_of(gen, slot, unit) if slot >= 0 else (0, 0, 1)


class Inputs:
    def __init__(self, gen, roles):
        sl = roles.slot
        ev = roles.kind == KIND_EV
        self.c_speed = _scale(gen, sl["speed"], 100)
        self.c_wheel = _scale(gen, sl["wheel_fl"], 100)
        self.c_rpm = _scale(gen, sl["rpm"], 1)
        self.c_pedal = _scale(gen, sl["pedal"], 10)
        self.c_boost = _scale(gen, sl["boost"], 10)
        ts = sl["coolant"] if sl["coolant"] >= 0 else sl["motor_temp"]
        self.s_temp = ts
        self.c_temp = _scale(gen, ts, 10)
        # slots read at 10 Hz (-1: absent)
        self.s_speed = sl["speed"]
        self.s_wheels = (sl["wheel_fl"], sl["wheel_fr"], sl["wheel_rl"], sl["wheel_rr"])
        self.s_rpm = sl["rpm"] if not ev else -1
        self.s_pedal = sl["pedal"]
        self.s_boost = sl["boost"]
        self.s_running = sl["running"]
        self.engine = not ev
        # messages whose validity each input needs (-1: absent)
        self.m_speed = roles.msg["speed"]
        self.m_wheels = roles.msg["wheel_fl"]
        self.m_eng = roles.msg["rpm"] if not ev else roles.msg["motor_temp"]
        self.m_pedal = roles.msg["pedal"]
        self.m_fuel = roles.msg["fuel_rate"]
        self.m_temp = roles.msg["coolant"] if sl["coolant"] >= 0 else roles.msg["motor_temp"]
        # state
        self.implausible = False
        self.imp_cnt = 0
        self.ok_cnt = 0
        self.vhist = array("i", bytes(4 * 10))
        self.vpos = 0
        # this tick's readings
        self.speed_ok = False
        self.v = 0
        self.a = 0
        self.eng_ok = False
        self.rpm = -1
        self.pedal_ok = False
        self.pedal = -1
        self.boost = -1
        self.temp = 0
        self.running = False

    def read(self, valid, values):
        """This tick's readings from the VALID flags and the raw values."""
        m = self.m_speed
        sp_valid = m >= 0 and valid[m]
        v = 0
        if sp_valid:
            c = self.c_speed
            v = (values[self.s_speed] * c[0] + c[1]) // c[2]
            m = self.m_wheels
            if m >= 0 and valid[m]:
                s = self.s_wheels
                c = self.c_wheel
                wsum = values[s[0]] + values[s[1]] + values[s[2]] + values[s[3]]
                wv = (wsum * c[0] + c[1]) // c[2] // 4
                if abs(wv - v) > _WHEEL_TOLERANCE:
                    self.ok_cnt = 0
                    self.imp_cnt += 1
                    if self.imp_cnt >= 3:
                        self.implausible = True
                else:
                    self.imp_cnt = 0
                    self.ok_cnt += 1
                    if self.ok_cnt >= 10:
                        self.implausible = False
        speed_ok = sp_valid and not self.implausible
        self.speed_ok = speed_ok
        self.v = v
        # acceleration over the last second, cm/s2
        vh = self.vhist
        vpos = self.vpos
        a = 0
        if speed_ok:
            a = (v - vh[vpos]) * 5 // 18
            vh[vpos] = v
        else:
            for k in range(10):
                vh[k] = v
        self.a = a
        self.vpos = vpos + 1 if vpos < 9 else 0
        m = self.m_eng
        self.eng_ok = m >= 0 and valid[m] and (self.m_temp < 0 or valid[self.m_temp])
        rpm = -1
        if self.s_rpm >= 0:
            c = self.c_rpm
            rpm = (values[self.s_rpm] * c[0] + c[1]) // c[2]
        self.rpm = rpm
        m = self.m_pedal
        pedal_ok = m >= 0 and valid[m]
        self.pedal_ok = pedal_ok
        pedal = -1
        if pedal_ok:
            c = self.c_pedal
            pedal = (values[self.s_pedal] * c[0] + c[1]) // c[2]
        self.pedal = pedal
        boost = -1
        if self.s_boost >= 0:
            c = self.c_boost
            boost = (values[self.s_boost] * c[0] + c[1]) // c[2]
        self.boost = boost
        temp = 0
        if self.s_temp >= 0:
            c = self.c_temp
            temp = (values[self.s_temp] * c[0] + c[1]) // c[2]
        self.temp = temp
        self.running = self.s_running >= 0 and values[self.s_running] != 0
        return speed_ok
