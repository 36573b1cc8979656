"""The firmware's OBD-II client against references nobody here wrote:
python-OBD's PID decoders (the ``obd`` package) and can-isotp's ISO-TP.

The firmware modules run here in CPython (keifw.compat stands in for
MicroPython); the same integer code runs on the boards.
"""

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keidrive.paths import firmware_dir

sys.path.insert(0, str(firmware_dir()))
import keifw.compat  # noqa: F401  (the micropython stand-in first)
from keifw import economy, isotp, obd, obdfuel, obdpid
from keifw.vehicle import Roles
from keifw.vehicles import kei_turbo_660 as gen


@pytest.fixture(scope="module")
def obd_commands():
    # the board stubs installed for the type checks ship a stub-only "mip"
    # package that pint (python-OBD's units) mistakes for the MIP solver
    sys.modules.setdefault("mip", None)  # type: ignore[arg-type]
    if sys.modules["mip"] is not None and not hasattr(sys.modules["mip"], "model"):
        sys.modules["mip"] = None  # type: ignore[assignment]
    obd_pkg = pytest.importorskip("obd")
    return obd_pkg.commands


class _Msg:
    def __init__(self, data):
        self.data = bytearray(data)


class Port:
    def __init__(self):
        self.sent = []

    def send(self, can_id, extended, buf, n):
        self.sent.append((can_id, extended, bytes(buf[:n])))
        return True


def client():
    econ = economy.Economy(gen, Roles(gen))
    c = obd.Client({"obd": True}, econ, Port())
    c.pending = True
    c.tx[1] = 0x01
    return c


def parse(c, payload):
    c._message(0, bytearray(payload), len(payload), 0)
    return c.v


# (PID, firmware value from its raw slot, python-OBD quantity -> same unit)
CASES = {
    0x0C: (lambda v: v[obdpid.V_RPM] / 4, lambda q: q.magnitude),
    0x0D: (lambda v: v[obdpid.V_SPEED], lambda q: q.to("kph").magnitude),
    0x0B: (lambda v: v[obdpid.V_MAP], lambda q: q.to("kilopascal").magnitude),
    0x0F: (lambda v: v[obdpid.V_IAT] - 40, lambda q: q.to("degC").magnitude),
    0x05: (lambda v: v[obdpid.V_COOLANT] - 40, lambda q: q.to("degC").magnitude),
    0x10: (lambda v: v[obdpid.V_MAF] * 10 / 1000, lambda q: q.to("gps").magnitude),
    0x5E: (lambda v: obdfuel.from_fuel_rate(v[obdpid.V_FUEL_RATE]) / 1000, lambda q: q.to("L/h").magnitude),
    0x44: (lambda v: v[obdpid.V_LAMBDA] / obdfuel.LAMBDA_ONE, lambda q: q.magnitude),
    0x2F: (lambda v: v[obdpid.V_FUEL_LEVEL] * 100 / 255, lambda q: q.magnitude),
    0x11: (lambda v: v[obdpid.V_THROTTLE] * 100 / 255, lambda q: q.magnitude),
}


@settings(max_examples=300, deadline=None)
@given(pid=st.sampled_from(sorted(CASES)), a=st.integers(0, 255), b=st.integers(0, 255))
def test_pid_decoding_matches_python_obd(obd_commands, pid, a, b):
    command = obd_commands[1][pid]
    data = bytes([0x41, pid, a, b][: 2 + command.bytes - 2])
    ours, theirs = CASES[pid]
    expected = theirs(command.decode([_Msg(data)]))
    got = ours(parse(client(), data))
    # python-OBD's UAS 0x1E rounds lambda's scale to 0.0000305 (J1979: 2/65536)
    rel = 1e-3 if pid == 0x44 else 1e-9
    assert got == pytest.approx(expected, rel=rel, abs=1e-9), (hex(pid), data.hex())


@settings(max_examples=100, deadline=None)
@given(word=st.integers(0, 0xFFFFFFFF))
def test_supported_pid_map_matches_python_obd(obd_commands, word):
    data = bytes([0x41, 0x00]) + word.to_bytes(4, "big")
    bits = obd_commands.PIDS_A.decode([_Msg(data)])
    c = client()
    c.phase = 0
    parse(c, data)
    c.ecus = 1
    for pid in range(1, 33):
        assert c.supports(pid) == bool(bits[pid - 1]), hex(pid)


def test_fuel_status_fuel_cut_matches_python_obd(obd_commands):
    text = obd_commands.FUEL_STATUS.decode([_Msg(bytes([0x41, 0x03, 4, 0]))])[0]
    assert "fuel cut" in text
    assert obdfuel.fuel_cut(4, -1, 0) and obdfuel.fuel_cut(4, 32768, 200)
    assert not obdfuel.fuel_cut(4, 30000, 250)  # enriched: full load, not a cut
    assert not obdfuel.fuel_cut(2, -1, 0)  # closed loop at idle


def test_multi_pid_reply_parses_every_pid():
    c = client()
    v = parse(c, bytes([0x41, 0x0D, 57, 0x0C, 0x1A, 0xF8, 0x0B, 66, 0x0F, 70]))
    assert (v[obdpid.V_SPEED], v[obdpid.V_RPM], v[obdpid.V_MAP], v[obdpid.V_IAT]) == (57, 0x1AF8, 66, 70)


@given(maf=st.integers(0, 65535), lam=st.integers(1, 65535))
def test_maf_fuel_is_exact_within_a_millilitre_per_hour(maf, lam):
    # the integer path against the formula in floating point (lambda below
    # 0.5 is taken as 0.5)
    exact = maf / 100 * 3600 / (14.7 * 0.745) / (max(lam, 16384) / 32768)
    got = obdfuel.from_air(maf * 10, lam)
    assert abs(got - exact) <= 1 + exact * 1e-5  # the constant 328.72 is 328.7216...


@given(m=st.integers(10, 255), iat=st.integers(0, 255), rpm4=st.integers(0, 65535),
       ve=st.integers(30, 120), vd=st.integers(300, 3000))
def test_speed_density_air_is_exact_and_31_bit(m, iat, rpm4, ve, vd):
    exact = ve / 100 * m * 1000 * vd * 1e-6 * (rpm4 / 4) / 120 / (287.05 * (iat - 40 + 273)) * 1e6
    got = obdfuel.speed_density_air(m, iat, rpm4, ve, vd)
    assert abs(got - min(exact, 0x1FFFFF)) <= 1 + exact * 1e-4


# ---------------------------------------------------------------- ISO-TP


def _isotp_sender(txid=0x7E8, rxid=0x7E0, **params):
    import isotp

    frames, inbox = [], []
    stack = isotp.TransportLayerLogic(
        rxfn=lambda timeout: inbox.pop(0) if inbox else None,
        txfn=frames.append,
        address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=txid, rxid=rxid),
        params={"tx_padding": 0, "tx_data_min_length": 8, **params},
    )
    return stack, frames, inbox


def _fc_to(inbox, port, rxid=0x7E0):
    import isotp

    for can_id, _ext, data in port.sent:
        if can_id == rxid:
            inbox.append(isotp.CanMessage(arbitration_id=can_id, data=data, dlc=8))
    port.sent.clear()


@pytest.mark.parametrize("length", [7, 8, 20, 40, 64])
def test_firmware_reassembles_what_can_isotp_sends(length):
    payload = bytes([0x49, 0x02, 0x01]) + bytes((65 + k % 26) for k in range(length - 3))
    stack, frames, inbox = _isotp_sender()
    c = client()
    c.tx[1] = 0x09
    stack.send(payload)
    t = 0
    for _ in range(50):
        stack.process()
        while frames:
            f = frames.pop(0)
            c.frame(f.arbitration_id, bytearray(f.data), f.dlc, t)
            t += 1000
        _fc_to(inbox, c.port)
    done = c.rx[0]
    assert done.length == length and bytes(done.buf[:length]) == payload
    if length == 20:
        assert bytes(c.vin) == payload[3:]


def test_firmware_flow_control_is_continue_to_send_all_at_once():
    stack, frames, _inbox = _isotp_sender()
    c = client()
    stack.send(bytes(range(30)))
    stack.process()
    c.frame(0x7E8, bytearray(frames.pop(0).data), 8, 0)
    assert c.port.sent == [(0x7E0, False, bytes(isotp.FC_CTS))]


def test_firmware_abandons_a_message_whose_sender_stops():
    stack, frames, inbox = _isotp_sender()
    c = client()
    stack.send(bytes(range(40)))
    stack.process()
    c.frame(0x7E8, bytearray(frames.pop(0).data), 8, 0)  # first frame, FC sent
    _fc_to(inbox, c.port)
    stack.process()
    first_cf = frames.pop(0)
    assert c.rx[0].feed(bytearray(first_cf.data), 8, 10000) == isotp.MORE
    # the next consecutive frame never comes within N_Cr
    assert not c.rx[0].expired(10000 + isotp.N_CR_US)
    assert c.rx[0].expired(10000 + isotp.N_CR_US + 1)
    # ... and a late one is not taken for a message
    late = frames.pop(0) if frames else None
    if late is not None:
        assert c.rx[0].feed(bytearray(late.data), 8, 500000) == isotp.NOTHING


def test_firmware_rejects_consecutive_frames_out_of_sequence():
    rx = isotp.Rx()
    assert rx.feed(bytearray(b"\x10\x14\x49\x02\x01ABC"), 8, 0) == isotp.SEND_FC
    assert rx.feed(bytearray(b"\x22DEFGHIJ"), 8, 1000) == isotp.BAD


def test_firmware_refuses_a_message_too_long_for_its_buffer():
    stack, frames, _inbox = _isotp_sender()
    c = client()
    stack.send(bytes(200))
    stack.process()
    c.frame(0x7E8, bytearray(frames.pop(0).data), 8, 0)
    assert c.port.sent[-1] == (0x7E0, False, bytes(isotp.FC_OVERFLOW))


def test_can_isotp_reads_the_firmwares_requests():
    import isotp

    got = []
    rx = isotp.TransportLayerLogic(
        rxfn=lambda timeout: got.pop(0) if got else None, txfn=lambda m: None,
        address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E8, rxid=0x7DF),
    )
    c = client()
    c.phase = 4
    c.fast_n = 3
    c.fast[:3] = b"\x01\x0d\x5e"
    c.started = True
    c.pending = False
    c.tick(0)
    can_id, ext, data = c.port.sent[-1]
    assert (can_id, ext, len(data)) == (0x7DF, False, 8)
    got.append(isotp.CanMessage(arbitration_id=can_id, data=data, dlc=8))
    rx.process()
    assert rx.recv() == bytearray(b"\x01\x0d\x5e")


def test_29_bit_replies_and_flow_control_addresses():
    import isotp as can_isotp

    frames = []
    stack = can_isotp.TransportLayerLogic(
        rxfn=lambda timeout: None, txfn=frames.append,
        address=can_isotp.Address(can_isotp.AddressingMode.NormalFixed_29bits, source_address=0x10,
                                  target_address=0xF1),
        params={"tx_padding": 0, "tx_data_min_length": 8},
    )
    c = client()
    stack.send(bytes([0x49, 0x02, 0x01]) + b"JHMJF5510P1345678")
    stack.process()
    f = frames.pop(0)
    assert f.arbitration_id == 0x18DAF110
    c.frame(f.arbitration_id | 0x20000000, bytearray(f.data), 8, 0)
    assert c.port.sent[-1][:2] == (0x18DA10F1, True)
