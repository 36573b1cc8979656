"""Which signal of the generated decoder module plays which role.

The same firmware serves an engine car, a mild hybrid and an EV: roles are
looked up by "MESSAGE.Signal" name in the generated ``SLOT`` table; a role
whose signal the vehicle DBC does not have is -1 and everything that needs it
is skipped.
"""

ROLE_CANDIDATES = {
    "speed": ("VEHICLE_SPEED.VehicleSpeed",),
    "wheel_fl": ("WHEEL_SPEEDS.WheelSpeedFL",),
    "wheel_fr": ("WHEEL_SPEEDS.WheelSpeedFR",),
    "wheel_rl": ("WHEEL_SPEEDS.WheelSpeedRL",),
    "wheel_rr": ("WHEEL_SPEEDS.WheelSpeedRR",),
    "fuel_rate": ("ENGINE_2.FuelRate",),
    "rpm": ("ENGINE_1.EngineSpeed",),
    "pedal": ("ENGINE_1.AccelPedal", "VCU_1.AccelPedal"),
    "boost": ("ENGINE_2.BoostPressure",),
    "coolant": ("ENGINE_3.CoolantTemp",),
    "motor_temp": ("MOTOR_STATUS.MotorTemp",),
    "running": ("ENGINE_1.EngineRunning", "EV_STATE.ReadyState"),
    "fuel_cut": ("ENGINE_1.FuelCutActive",),
    "pack_v": ("BATTERY_STATUS.PackVoltage", "LIB_STATUS.PackVoltage"),
    "pack_i": ("BATTERY_STATUS.PackCurrent", "LIB_STATUS.PackCurrent"),
    "idle_stop": ("HYBRID_STATE.IdleStopActive",),
    "regen": ("HYBRID_STATE.RegenActive", "EV_STATE.RegenActive"),
    "assist": ("HYBRID_STATE.AssistActive",),
}

# roles whose message must be valid for the figures and warnings
REQUIRED = ("speed", "fuel_rate", "rpm", "pedal", "pack_v")

KIND_ICE = 0
KIND_HYBRID = 1
KIND_EV = 2


class Roles:
    def __init__(self, gen):
        self.gen = gen
        self.slot = {}
        self.name = {}
        self.msg = {}
        for role, candidates in ROLE_CANDIDATES.items():
            slot = -1
            name = ""
            for cand in candidates:
                if cand in gen.SLOT:
                    slot = gen.SLOT[cand]
                    name = cand
                    break
            self.slot[role] = slot
            self.name[role] = name
            self.msg[role] = gen.MSG_INDEX_BY_NAME[name.split(".")[0]] if slot >= 0 else -1
        if self.slot["fuel_rate"] < 0 and self.slot["pack_v"] >= 0:
            self.kind = KIND_EV
        elif self.slot["pack_v"] >= 0:
            self.kind = KIND_HYBRID
        else:
            self.kind = KIND_ICE

    def has(self, role):
        return self.slot[role] >= 0
