"""The compiler on production DBCs and on fixtures of their hard cases.

Every opendbc file in $KEIDRIVE_OPENDBC (skipped, saying so, when it is not
set) and the fixtures below compile with bounded work; the module decodes
random payloads exactly as cantools does, on the fast path (raw values from
``dispatch``) and the debug path (``decode``), in the real MicroPython unix
port. The reference is cantools' own view of the file as the compiler loaded
it (skipped messages left out, non-strict where strict loading fails).
"""

import os
import random
import subprocess
from pathlib import Path

import pytest

from conftest import DBC_FIXTURES, run_micropython
from keidrive.dbccompiler import SearchWork, compile_dbc, exec_generated
from keidrive.dbccompiler.read import load_dbc
from keidrive.paths import firmware_dir
from test_dbc_differential import DECODE_SCRIPT, check_batch

FIXTURES = ["real_cases.dbc", "unreadable_parts.dbc", "float_signal.dbc", "overlap_nonstrict.dbc", "unused_val.dbc"]
OPENDBC = os.environ.get("KEIDRIVE_OPENDBC")
OPENDBC_FILES = sorted(Path(OPENDBC).glob("*.dbc")) if OPENDBC else []
FRAMES_PER_MESSAGE = 4
# The filter searches' work for any one file: 2.8 million masked ids for the
# largest opendbc file here (ford_cgea1_2_ptcan_2011, 143 received ids),
# under a second of the compile's 1-7 s (cantools' parse is most of the rest).
MAX_MASKED_IDS = 8_000_000
MAX_MERGES = 60_000


def _compile(path: Path, directory: Path) -> tuple[dict, SearchWork]:
    work = SearchWork()
    text = compile_dbc([path], work=work)
    (directory / "gen.py").write_text(text)
    (directory / "keifw").symlink_to(firmware_dir() / "keifw")
    return exec_generated(text), work


def _frames(database, names, seed, per_message=FRAMES_PER_MESSAGE):
    """Random payloads per message, each multiplexer steered to one of its pages half the time."""
    rng = random.Random(seed)
    messages = [database.get_message_by_name(name) for name in names]
    batch = []
    for index, message in enumerate(messages):
        for _ in range(per_message):
            payload = bytes(rng.getrandbits(8) for _ in range(message.length))
            if message.is_multiplexed() and rng.random() < 0.5:
                payload = _steer(rng, message, message.signal_tree, payload)
            batch.append((index, message, payload))
    return batch


def _steer(rng, message, tree, payload: bytes) -> bytes:
    from test_dbc_differential import _with_page

    for node in tree:
        if isinstance(node, dict):
            for name, pages in node.items():
                page = rng.choice(sorted(pages))
                payload = _with_page(message.get_signal_by_name(name), payload, page)
                payload = _steer(rng, message, pages[page], payload)
    return payload


def _differential(path: Path, tmp_path: Path) -> str:
    module, work = _compile(path, tmp_path)
    database = load_dbc(path).database
    batch = _frames(database, module["MSG_NAMES"], seed=path.name)
    payload_file = tmp_path / "frames.txt"
    payload_file.write_text(" ".join(f"{index}:{payload.hex()}" for index, _, payload in batch))
    checked = check_batch(batch, run_micropython(DECODE_SCRIPT, str(tmp_path), str(payload_file)).splitlines())
    assert work.masked_ids < MAX_MASKED_IDS and work.merges < MAX_MERGES, work
    return f"{path.name}: {module['N_MESSAGES']} messages, {checked} frames match cantools; {work}"


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_matches_cantools(fixture, tmp_path):
    print("\n" + _differential(DBC_FIXTURES / fixture, tmp_path))


@pytest.mark.skipif(not OPENDBC, reason="set KEIDRIVE_OPENDBC to a folder of opendbc DBC files")
@pytest.mark.parametrize("path", OPENDBC_FILES, ids=lambda path: path.name)
def test_opendbc_file_matches_cantools(path, tmp_path):
    print("\n" + _differential(path, tmp_path))


def _stderr_of_compile(path: Path, tmp_path: Path) -> list[str]:
    import sys

    command = [sys.executable, "-m", "keidrive", "dbc", "compile", str(path), "-o", str(tmp_path / "o.py")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def test_unreadable_messages_are_cut_out_with_one_line_each(tmp_path):
    lines = _stderr_of_compile(DBC_FIXTURES / "unreadable_parts.dbc", tmp_path)
    assert lines == [
        "keidrive: warning: unreadable_parts.dbc: message TOO_WIDE_STANDARD_ID: frame id 0x62cc033 is more than "
        "11 bits without the extended flag: read as a 29-bit id",
        "keidrive: warning: unreadable_parts.dbc: message TOO_WIDE_ID skipped: frame id 0x40000000 is more than "
        "29 bits",
        "keidrive: warning: unreadable_parts.dbc: message 2017_5 skipped: 2017_5: not a DBC identifier "
        "(cantools cannot read it)",
        lines[3],
    ]
    assert lines[3].startswith('keidrive: warning: unreadable_parts.dbc: line 31 ignored: VAL_ 512 Mode 0 "off" 1 "on"')
    module = exec_generated((tmp_path / "o.py").read_text())
    assert module["MSG_NAMES"] == ("GOOD_FIRST", "GOOD_LAST", "TOO_WIDE_STANDARD_ID")
    assert module["MSG_EXTENDED"] == b"\x00\x00\x01" and module["MSG_IDS"][2] == 0x62CC033
    assert "# Skipped from unreadable_parts.dbc: 2017_5: " in (tmp_path / "o.py").read_text()


def test_real_cases_compile_with_the_counter_rule(tmp_path):
    lines = _stderr_of_compile(DBC_FIXTURES / "real_cases.dbc", tmp_path)
    assert lines == [
        "keidrive: warning: real_cases.dbc: message AMBIGUOUS_COUNTERS: several COUNTER-like signals "
        "(ENG_COUNTER, MOT_COUNTER), none named COUNTER: all decoded, none checked",
    ]
    m = exec_generated((tmp_path / "o.py").read_text())
    index = m["MSG_INDEX_BY_NAME"]
    # Of COUNTER and ALIVE_COUNTER, the one named exactly COUNTER is the validity counter.
    assert m["SLOT_SIGNAL"][m["MSG_COUNTER_SLOT"][index["TWO_COUNTERS"]]] == "COUNTER"
    assert m["MSG_COUNTER_SLOT"][index["AMBIGUOUS_COUNTERS"]] == -1
    assert "FD_EIGHT" in index  # an 8-byte CAN FD frame decodes as a classic one
    assert m["SLOT_LIMBS"][m["SLOT"]["FLOATS.Temp32"]] == 2 and m["SLOT_LIMBS"][m["SLOT"]["DOUBLE_MOTO.Position"]] == 4


def test_debug_path_on_the_cases_cantools_decodes_specially(tmp_path):
    """Values picked by hand: a mux value with no signals of its own gives the multiplexer alone
    (as cantools), a negative signed multiplexer selects no page, M without m is a plain signal."""
    import struct

    import cantools

    _compile(DBC_FIXTURES / "real_cases.dbc", tmp_path)
    database = cantools.database.load_file(str(DBC_FIXTURES / "real_cases.dbc"), encoding="utf-8")
    cases = [
        ("SIGNED_MUX", bytes([5, 1, 2, 3, 0, 0, 0, 0])),  # page 5: a VAL_ choice, no signals
        ("SIGNED_MUX", bytes([0xE, 1, 2, 3, 0, 0, 0, 0])),  # -2: no page (cantools raises)
        ("SIGNED_MUX", bytes([2, 0x9C, 0xFF, 3, 0, 0, 0, 0])),
        ("M_WITHOUT_M", bytes([7, 0x10, 0x27, 0])),
        ("EXTENDED_MUX", bytes([0x41, 7, 9, 0x80, 0, 0, 0, 0])),
        ("FLOATS", struct.pack("<ff", -12.5, 3.0e38)),
        ("DOUBLE_MOTO", struct.pack(">d", -1.0e300)),
    ]
    script = (
        "import sys\nsys.path.insert(0, sys.argv[1])\nimport gen\n"
        "for name, data in " + repr([(n, d) for n, d in cases]) + ":\n"
        "    i = gen.MSG_INDEX_BY_NAME[name]\n"
        "    print(repr(gen.decode(gen.MSG_IDS[i], data)))\n"
    )
    for (name, data), line in zip(cases, run_micropython(script, str(tmp_path)).splitlines()):
        try:
            expected = database.decode_message(name, data, decode_choices=False)
        except Exception:
            expected = None
        got = eval(line)  # a dict of ints and floats, or None
        assert got == expected, (name, data.hex(), got, expected)


@pytest.mark.skipif(not OPENDBC, reason="set KEIDRIVE_OPENDBC to a folder of opendbc DBC files")
def test_roles_file_makes_a_production_dbc_board_sized(tmp_path):
    """The whole Ford powertrain DBC is 8x a board's budget; its roles file's selection fits."""
    from keidrive.dbccompiler.budget import MPY_BUDGET, mpy_size

    path = Path(OPENDBC) / "ford_cgea1_2_ptcan_2011.dbc"
    text = compile_dbc([path], roles_path=DBC_FIXTURES / "ford_cgea1_2_ptcan_2011.roles.toml", warn=False)
    module = exec_generated(text)
    size = mpy_size(text)
    print(f"\n{path.name} with its roles file: {module['N_MESSAGES']} messages, {len(text)} B source, "
          f"{size} B armv7m .mpy (budget {MPY_BUDGET} B)")
    assert module["MSG_NAMES"] == ("EngineData_1_CG1", "Engine_Data_7_CG1", "EngVehicleSpThrottle_CG1")
    assert isinstance(size, int) and size <= MPY_BUDGET
    (tmp_path / "gen.py").write_text(text)
    (tmp_path / "keifw").symlink_to(firmware_dir() / "keifw")
    database = load_dbc(path).database
    batch = _frames(database, module["MSG_NAMES"], seed=1)
    payload_file = tmp_path / "frames.txt"
    payload_file.write_text(" ".join(f"{index}:{payload.hex()}" for index, _, payload in batch))
    check_batch(batch, run_micropython(DECODE_SCRIPT, str(tmp_path), str(payload_file)).splitlines())
