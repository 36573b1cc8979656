"""Reading DBC files cantools rejects as a whole, and opendbc's generator templates.

cantools 45 rejects a file whose VAL_ names a signal its message lacks
("unused VAL_ entries"), even non-strict: the compiler loads such a file a
message at a time, leaving out only what cantools cannot read, one warning
line each. A template's ``CM_ "IMPORT x.dbc";`` statements are resolved as
opendbc's generator resolves them (tests/test_dbc_opendbc_package.py checks
that against the generator itself).
"""

import subprocess
import sys

import cantools
import pytest

from conftest import DBC_FIXTURES
from keidrive.dbccompiler import compile_dbc, exec_generated
from keidrive.dbccompiler.read import load_dbc
from keidrive.errors import KeidriveError

UNUSED_VAL = DBC_FIXTURES / "unused_val.dbc"


def test_cantools_rejects_the_fixture_as_a_whole():
    """The reason for the fallback, as cantools states it (the installed release)."""
    with pytest.raises(Exception, match="unused VAL_ entries"):
        cantools.database.load_file(str(UNUSED_VAL), strict=False)


def test_unused_val_entries_are_left_out_one_line_each(tmp_path):
    output = tmp_path / "o.py"
    result = subprocess.run([sys.executable, "-m", "keidrive", "dbc", "compile", str(UNUSED_VAL), "-o", str(output)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "keidrive: warning: unused_val.dbc: line 28 ignored: VAL_ 1000 Ghost 0 \"none\" ;: "
        "names no message of the file",
        "keidrive: warning: unused_val.dbc: line 27 ignored: VAL_ 568 MapSpeedLimit 31 \"SNA\" 30 \"UNLIMITED\" ;: "
        "message ROAD_SIGN has no signal MapSpeedLimit (cantools refuses it)",
    ]
    module = exec_generated(output.read_text())
    assert module["MSG_NAMES"] == ("DRIVE", "ROAD_SIGN")
    assert module["MSG_CYCLE_MS"] == (10, 0)  # the file's attribute definitions reach each message
    database = load_dbc(UNUSED_VAL).database
    assert database.get_message_by_name("DRIVE").get_signal_by_name("Gear").choices[3] == "D"
    assert database.get_message_by_name("DRIVE").get_signal_by_name("Speed").comment.startswith("Vehicle speed;\n")


def _template(folder, body, include="_common.dbc"):
    (folder / include).write_text('VERSION ""\nBS_:\nBU_: ECU\nBO_ 256 COMMON: 8 ECU\n'
                                  ' SG_ Level : 0|8@1+ (1,0) [0|255] "" ECU\n')
    (folder / "car.dbc").write_text(body)
    return folder / "car.dbc"


def test_imports_resolve_as_opendbc_generator_does(tmp_path):
    path = _template(tmp_path, 'CM_ "IMPORT _common.dbc";\n\nBO_ 512 OWN: 8 ECU\n'
                               ' SG_ Mode : 0|8@1+ (1,0) [0|255] "" ECU\n\nVAL_ 256 Level 0 "empty" ;\n')
    loaded = load_dbc(path)
    assert [m.name for m in loaded.database.messages] == ["COMMON", "OWN"]
    assert [name for name, _ in loaded.imports] == ["_common.dbc"]
    text = compile_dbc([path], warn=False)
    assert "# car.dbc imports _common.dbc sha256 " in text
    assert exec_generated(text)["MSG_NAMES"] == ("COMMON", "OWN")


@pytest.mark.parametrize("name, words", [
    ("../outside.dbc", "IMPORT '../outside.dbc': not the name of a .dbc file beside it"),
    ("_missing.dbc", "IMPORT _missing.dbc: cannot read it beside car.dbc"),
])
def test_a_bad_import_is_one_clear_error(tmp_path, name, words):
    path = _template(tmp_path, f'CM_ "IMPORT {name}";\nBO_ 512 OWN: 8 ECU\n')
    with pytest.raises(KeidriveError, match=words.replace("(", r"\(").replace(".", r"\.")):
        load_dbc(path)
