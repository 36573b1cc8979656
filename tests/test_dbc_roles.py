"""``keidrive dbc compile --roles``: the roles file selects the messages; per-message CHECKSUM algorithms.

The checksum reference is keidrive.dbccompiler.checksum, written here from
opendbc's documented algorithms (can/common.cc: toyota_checksum,
honda_checksum); the two hand-worked frames below follow those definitions
step by step. There is no independent implementation in the test
dependencies to compare with, so these tests prove the firmware and encoder
agree with that reading, not that the reading matches every car.
"""

import json
import random
import subprocess
import sys

import pytest

from conftest import DBC_FIXTURES, run_micropython
from keidrive.dbccompiler import compile_dbc, exec_generated
from keidrive.dbccompiler.checksum import ALGORITHMS
from keidrive.paths import firmware_dir

CAR = DBC_FIXTURES / "roles_car.dbc"
ROLES = DBC_FIXTURES / "roles_car.toml"


def keidrive(*args):
    return subprocess.run([sys.executable, "-m", "keidrive", *args], capture_output=True, text=True, timeout=120)


def test_roles_file_selects_its_messages(tmp_path):
    output = tmp_path / "car.py"
    result = keidrive("dbc", "compile", str(CAR), "--roles", str(ROLES), "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "keidrive: warning: roles_car.dbc: message GEARBOX: CHECKSUM algorithm 'vw_mqb' is not one offered "
        "(CRC8_SAEJ1850, TOYOTA, HONDA): frames unchecked\n"
    )
    m = exec_generated(output.read_text())
    assert m["MSG_NAMES"] == ("SPEED", "ENGINE_DATA", "GEARBOX", "HONDA_EXT")  # not STEERING_LKA, NOT_A_ROLE
    assert all(m["MSG_RX"])
    assert m["ROLES"]["speed"] == "SPEED.SPEED" and m["ROLE_UNITS"] == {
        "speed": "kph", "rpm": "rpm", "pedal": "%", "fuel_rate": "L/h", "running": ""}
    kinds = [m["CHECKSUM_ALGORITHMS"][k][0] if k >= 0 else None for k in m["MSG_CHECKSUM_ALGORITHM"]]
    assert kinds == [1, 2, None, 2]  # Toyota byte sum, Honda nibble sum, unchecked, Honda
    assert "# Options: --roles roles_car.toml --hw-filters 8" in output.read_text()


def test_hand_worked_frames():
    # Toyota, id 0xB4, 8 bytes of zeros: 8 (length) + 0xB4 = 0xBC.
    assert ALGORITHMS["TOYOTA"].compute(bytes(8), 7, 0xB4) == 0xBC
    # Honda, id 0x1A6 (nibbles 1 + 0xA + 6 = 17), zeros: (8 - 17) mod 16 = 7; extended adds 3.
    assert ALGORITHMS["HONDA"].compute(bytes(8), 7, 0x1A6) == 7
    assert ALGORITHMS["HONDA"].compute(bytes(8), 7, 0x1A6, extended=True) == 10
    # The checksum nibble's own bits never count; the byte's high nibble does.
    assert ALGORITHMS["HONDA"].compute(bytes(7) + b"\x0f", 7, 0x1A6) == 7
    assert ALGORITHMS["HONDA"].compute(bytes(7) + b"\x10", 7, 0x1A6) == 6


# Per checksummed message: encode random raw values, then decode_at the frame
# checked (0), with one bit flipped outside the checksum (-1), and unchecked.
CHECK_SCRIPT = """
import sys, json
sys.path.insert(0, sys.argv[1])
import gen as m
values = m.new_values()
buf = bytearray(8)
out = []
for token in open(sys.argv[2]).read().split():
    index, raws, flip = token.split(":")
    index = int(index)
    for pair in raws.split(","):
        slot, raw = pair.split("=")
        values[int(slot)] = int(raw)
    n = m.encode(index, values, buf)
    frame = bytes(buf[:n])
    good = m.decode_at(index, frame, 0, values)
    bad = bytearray(frame)
    bad[int(flip) // 8] ^= 1 << (int(flip) % 8)
    out.append([frame.hex(), good, m.decode_at(index, bad, 0, values), m.decode_at(~index, bad, 0, values),
                m.checksum_ok(index, frame)])
print(json.dumps(out))
"""


def test_checksums_encode_and_check_in_micropython(tmp_path):
    text = compile_dbc([CAR], roles_path=ROLES, warn=False)
    (tmp_path / "gen.py").write_text(text)
    (tmp_path / "keifw").symlink_to(firmware_dir() / "keifw")
    m = exec_generated(text)
    rng = random.Random(13)
    tokens, cases = [], []
    for index, name in enumerate(m["MSG_NAMES"]):
        kind = m["MSG_CHECKSUM_ALGORITHM"][index]
        if kind < 0:
            continue
        at = m["MSG_CHECKSUM_BYTE"][index]
        for _ in range(20):
            slots = [s for s in range(m["N_SLOTS"]) if m["SLOT_SIGNAL"][s] and
                     m["SLOT"].get(f"{name}.{m['SLOT_SIGNAL'][s]}") == s and s != m["MSG_CHECKSUM_SLOT"][index]]
            raws = ",".join(f"{s}={rng.getrandbits(m['SLOT_BITS'][s] - (1 if m['SLOT_SIGNED'][s] else 0))}"
                            for s in slots)
            # A bit outside the checksum field: another byte, or the high nibble of a nibble sum's byte.
            flip = rng.choice([b for b in range(8 * m["MSG_LEN"][index])
                               if b // 8 != at or (m["CHECKSUM_ALGORITHMS"][kind][0] == 2 and b % 8 >= 4)])
            tokens.append(f"{index}:{raws}:{flip}")
            cases.append((index, name, at))
    (tmp_path / "cases.txt").write_text(" ".join(tokens))
    results = json.loads(run_micropython(CHECK_SCRIPT, str(tmp_path), str(tmp_path / "cases.txt")))
    algorithms = {"SPEED": "TOYOTA", "ENGINE_DATA": "HONDA", "HONDA_EXT": "HONDA"}
    for (index, name, at), (frame_hex, good, bad, unchecked, ok) in zip(cases, results):
        frame = bytes.fromhex(frame_hex)
        algorithm = ALGORITHMS[algorithms[name]]
        field = frame[at] & 0xF if algorithm.width == 4 else frame[at]
        expected = algorithm.compute(frame, at, m["MSG_IDS"][index], bool(m["MSG_EXTENDED"][index]))
        assert field == expected, (name, frame_hex)
        assert (good, bad, unchecked, ok) == (0, -1, 0, True), (name, frame_hex)
    assert len(results) == 60


BAD_ROLES = {
    "unknown role": ('[roles]\nspeedo = "SPEED.SPEED"\n', "unknown role 'speedo'; did you mean speed? (valid: speed, "),
    "no such signal": ('[roles]\nspeed = "SPEED.VELOCITY"\n',
                       "role speed = 'SPEED.VELOCITY': no such signal in the DBCs"),
    "not MESSAGE.Signal": ('[roles]\nspeed = "SPEED"\n', "role speed = 'SPEED' is not \"MESSAGE.Signal\""),
    "unknown unit": ('[roles]\nspeed = "SPEED.SPEED"\n[units]\nspeed = "furlongs"\n',
                     "[units] speed = 'furlongs' is not a known unit"),
    "not TOML": ("[roles\n", "not valid TOML"),
    "no roles": ("[units]\n", "[roles] names no role"),
    "no such counter": ('[roles]\nspeed = "SPEED.SPEED"\n[counter]\nSPEED = "TICK"\n',
                        "roles_car.dbc: message SPEED: the roles file's COUNTER 'TICK' is no signal of it"),
    "skipped role message": ('[roles]\nspeed = "STEERING_LKA.STEER_TORQUE_CMD"\n[checksum]\nSTEERING_LKA = "honda"\n',
                             "role speed = 'STEERING_LKA.STEER_TORQUE_CMD': its message is skipped: STEERING_LKA: "
                             "CHECKSUM: a HONDA CHECKSUM must be an unsigned, unmultiplexed 4-bit signal"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROLES))
def test_bad_roles_file_is_one_clear_line(case, tmp_path):
    text, message = BAD_ROLES[case]
    roles = tmp_path / "roles.toml"
    roles.write_text(text)
    result = keidrive("dbc", "compile", str(CAR), "--roles", str(roles), "-o", str(tmp_path / "out.py"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("keidrive: error: "), result.stderr
    assert message in result.stderr
    assert not (tmp_path / "out.py").exists()


HEAP_SCRIPT = """
import sys, micropython
sys.path.insert(0, sys.argv[1])
import gen as m
values = m.new_values()
buf = bytearray(8)
checked = [i for i in range(m.N_MESSAGES) if m.MSG_CHECKSUM_ALGORITHM[i] >= 0]
results = [0]


def hot_path():
    for _ in range(50):
        for i in checked:
            m.encode(i, values, buf)
            if m.decode_at(i, buf, 0, values) != 0 or not m.checksum_ok(i, buf):
                results[0] += 1


micropython.heap_lock()
hot_path()
micropython.heap_unlock()
print(results[0], len(checked))
"""


def test_sum_checksums_allocate_nothing(tmp_path):
    (tmp_path / "gen.py").write_text(compile_dbc([CAR], roles_path=ROLES, warn=False))
    (tmp_path / "keifw").symlink_to(firmware_dir() / "keifw")
    wrong, checked = map(int, run_micropython(HEAP_SCRIPT, str(tmp_path)).split())
    assert (wrong, checked) == (0, 3)


def test_roles_file_names_the_counter(tmp_path):
    roles = tmp_path / "roles.toml"
    roles.write_text('[roles]\nspeed = "SPEED.SPEED"\n[counter]\nSPEED = "ENCODER"\n')
    m = exec_generated(compile_dbc([CAR], roles_path=roles, warn=False))
    assert m["MSG_NAMES"] == ("SPEED",)
    assert m["MSG_COUNTER_SLOT"][0] == m["SLOT"]["SPEED.ENCODER"] and m["MSG_COUNTER_BITS"][0] == 8
