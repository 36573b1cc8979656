"""Which signal of the generated decoder module plays which role.

The same firmware serves an engine car, a mild hybrid and an EV. The
generated module says which "MESSAGE.Signal" plays each role (its ``ROLES``
table, compiled from the vehicle's roles file) and the exact factor from its
unit to the one the firmware computes in (``ROLE_FACTORS``: km/h, L/h, rpm,
%, kPa, degC, V, A; the compiler's units table knows the spellings); no
signal or unit name is known here. A role the module does not name is -1
and everything that needs it is skipped.
"""

from .fixed import gcd

# every role the firmware reads; the compiler's roles files name these
ROLE_NAMES = (
    "speed", "wheel_fl", "wheel_fr", "wheel_rl", "wheel_rr", "fuel_rate", "rpm", "pedal", "boost",
    "coolant", "motor_temp", "running", "fuel_cut", "pack_v", "pack_i", "idle_stop", "regen", "assist",
)

# roles whose message must be valid for the figures and warnings
REQUIRED = ("speed", "fuel_rate", "rpm", "pedal", "pack_v")

KIND_ICE = 0
KIND_HYBRID = 1
KIND_EV = 2

def unit_fraction(gen, slot):
    """(num, den) converting the role signal at ``slot`` into the firmware's unit."""
    targets = getattr(gen, "ROLES", None) or {}
    factors = getattr(gen, "ROLE_FACTORS", None) or {}
    for role in targets:
        if gen.SLOT.get(targets[role], -1) == slot:
            return factors.get(role, (1, 1))
    return 1, 1


def scaled(gen, slot):
    """(sn, sd, on, od): the physical value in the firmware's unit is
    raw * sn/sd + on/od, from the module's exact SCALE/OFFSET fractions and the
    role's unit; each fraction reduced so products stay within 31 bits."""
    un, ud = unit_fraction(gen, slot)
    sn = gen.SCALE_NUM[slot] * un
    sd = gen.SCALE_DEN[slot] * ud
    g = gcd(abs(sn), sd)
    on = gen.OFFSET_NUM[slot] * un
    od = gen.OFFSET_DEN[slot] * ud
    h = gcd(abs(on), od)
    return sn // g, sd // g, on // h, od // h


class Roles:
    def __init__(self, gen):
        self.gen = gen
        self.slot = {}
        self.name = {}
        self.msg = {}
        targets = getattr(gen, "ROLES", None) or {}
        for role in ROLE_NAMES:
            name = targets.get(role, "")
            slot = gen.SLOT.get(name, -1) if name else -1
            self.slot[role] = slot
            self.name[role] = name if slot >= 0 else ""
            self.msg[role] = gen.MSG_INDEX_BY_NAME[name.split(".")[0]] if slot >= 0 else -1
        if self.slot["fuel_rate"] < 0 and self.slot["pack_v"] >= 0:
            self.kind = KIND_EV
        elif self.slot["pack_v"] >= 0:
            self.kind = KIND_HYBRID
        else:
            self.kind = KIND_ICE

    def has(self, role):
        return self.slot[role] >= 0
