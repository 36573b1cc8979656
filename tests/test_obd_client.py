"""The OBD-II client's protocol rules: several ECUs at once, its own bus-load
budget, response-pending negative replies. The firmware module in CPython;
ECUs are can-isotp senders."""

import sys

import isotp as can_isotp
from keidrive.paths import firmware_dir

sys.path.insert(0, str(firmware_dir()))
import keifw.compat  # noqa: F401
from keifw import economy, obd
from keifw.vehicle import Roles
from keifw.vehicles import kei_turbo_660 as gen


class Port:
    def __init__(self):
        self.sent = []

    def send(self, can_id, extended, buf, n):
        self.sent.append((can_id, extended, bytes(buf[:n])))
        return True


def make(cfg=None):
    return obd.Client(cfg or {"obd": True}, economy.Economy(gen, Roles(gen)), Port())


def ecu(txid):
    frames, inbox = [], []
    stack = can_isotp.TransportLayerLogic(
        rxfn=lambda timeout: inbox.pop(0) if inbox else None, txfn=frames.append,
        address=can_isotp.Address(can_isotp.AddressingMode.Normal_11bits, txid=txid, rxid=txid - 8),
        params={"tx_padding": 0, "tx_data_min_length": 8})
    return stack, frames, inbox


def test_two_ecus_answer_multi_frame_interleaved_and_both_are_reassembled():
    c = make()
    c.pending = True
    c.tx[1] = 0x09
    ecm, tcm = ecu(0x7E8), ecu(0x7E9)
    ecm[0].send(b"\x49\x02\x01JS2HA97S5M0234567")
    tcm[0].send(b"\x49\x04\x01" + b"33910-74PB1".ljust(16, b"\0"))
    t = 0
    for _ in range(40):
        for stack, frames, inbox in (ecm, tcm):
            stack.process()
            if frames:
                f = frames.pop(0)
                c.frame(f.arbitration_id, bytearray(f.data), f.dlc, t)
                t += 500
            for can_id, _ext, data in c.port.sent:
                if can_id == stack.address.get_rx_arbitration_id():
                    inbox.append(can_isotp.CanMessage(arbitration_id=can_id, data=data, dlc=8))
            c.port.sent = [s for s in c.port.sent if s[0] != stack.address.get_rx_arbitration_id()]
    assert bytes(c.vin) == b"JS2HA97S5M0234567" and c.vin_len == 17
    assert bytes(c.calid[:11]) == b"33910-74PB1"
    assert c.responses == 2 and c.answered == 0b11


def test_polling_holds_its_own_bus_load_under_the_configured_share():
    # 50 kbit/s, 1 %: 500 bit/s for requests, replies and flow control
    c = make({"obd": True, "can_bitrate": 50000, "obd_bus_share_pct": 1})
    c.phase = 4  # polling: speed, MAF, lambda, status, throttle
    c.ecus = 1
    c.fast[:6] = b"\x01\x0d\x10\x44\x03\x11"
    c.fast_n = 6
    t = 0
    for _ in range(600):  # 60 s of ticks, nothing answers: every request costs its full estimate
        c.tick(t)
        t += 100000
    bits = c.requests * obd.FRAME_BITS * 4  # request + first frame + flow control + consecutive frame
    assert bits <= 500 * 60 + c.budget * 10  # the bucket may start full
    assert c.requests < 600 // 2  # far fewer than one per tick: the budget, not the schedule, bounds it


def test_response_pending_waits_past_p2_then_takes_the_reply():
    c = make()
    c.started = True
    c.next_try = 0
    c.tick(0)  # 01 00 out
    assert c.pending
    c.frame(0x7E8, bytearray(b"\x03\x7f\x01\x78\x00\x00\x00\x00"), 8, 10000)  # response pending
    c.tick(100000)  # past P2 (50 ms) but within P2* (5 s): still waiting
    assert c.pending and c.timeouts == 0 and c.negative == 0
    c.frame(0x7E8, bytearray(b"\x06\x41\x00\x08\x18\x00\x01"), 8, 900000)
    c.tick(1000000)
    assert c.ecus == 1 and c.responses == 1 and c.supports(0x0D)


def test_a_negative_reply_is_counted_and_completes_that_ecus_part():
    c = make()
    c.started = True
    c.tick(0)
    c.frame(0x7E8, bytearray(b"\x03\x7f\x01\x12\x00\x00\x00\x00"), 8, 10000)
    c.tick(100000)
    assert c.negative == 1 and c.timeouts == 0


def _maps(c, slot, pids):
    for pid in pids:
        c.sup[32 * slot + (pid - 1) // 8] |= 0x80 >> ((pid - 1) % 8)


def _polling(c):
    """Past discovery: 0x7E8 (the engine: speed, MAF) and 0x7E9, a stranger
    claiming speed and the fuel rate."""
    c.started = True
    c.ecus = 0b11
    _maps(c, 0, (0x0D, 0x10))
    _maps(c, 1, (0x0D, 0x5E))
    c.phase = 4
    c._choose()


def test_the_engine_ecu_wins_a_pid_two_ecus_answer():
    c = make()
    _polling(c)
    assert c.engine == 0 and list(c.src[:1]) == [0]  # the speed from 0x7E8
    c.tick(0)
    assert c.pending and c.tx[1:4] == bytearray(b"\x01\x0d\x5e")
    c.frame(0x7E9, bytearray(b"\x06\x41\x0d\xc8\x5e\x00\x10\x00"), 8, 5000)  # 200 km/h, from the stranger
    c.frame(0x7E8, bytearray(b"\x03\x41\x0d\x32\x00\x00\x00\x00"), 8, 8000)  # 50 km/h, from the engine
    assert not c.pending  # both answered
    assert c.v[0] == 50 and c.v[6] == 16  # obdpid.V_SPEED the engine's; V_FUEL_RATE the stranger's (it alone has it)


def test_a_fuel_pid_nobody_answers_is_named_missing_then_the_next_method_taken():
    c = make()
    _polling(c)
    assert c.method == 1  # obd_fuel_rate: 0x5E, offered by the stranger only
    names = [b""] * 4
    t = 0
    for k in range(3):  # three polls: the engine answers the speed, the stranger nothing
        c.tick(t)
        c.frame(0x7E8, bytearray(b"\x03\x41\x0d\x32\x00\x00\x00\x00"), 8, t + 5000)
        t += 100000
        c.tick(t)  # P2 past: complete
        if k < 2:
            assert c.missing_names(names, 0) == 1 and names[0] == b"OBD-II 0x5E"
    assert c.method == 2 and c.n_fallbacks == 1 and bytes(c.fallbacks[:3]) == b"\x01\x5e\x01"  # MAF; 0x5E from 0x7E9
    assert c.missing_names(names, 0) == 0
