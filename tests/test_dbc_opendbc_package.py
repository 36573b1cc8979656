"""Every DBC the ``opendbc`` package from PyPI installs compiles and decodes as cantools does.

The package (a test dependency) holds production DBCs of many makes and
opendbc's generator templates, whose ``CM_ "IMPORT _x.dbc";`` statements the
compiler resolves as opendbc's generator does (checked here against the
generator's own output). Two templates import files the generator writes
from Python scripts, not files beside them: for those the generator's
output is compiled. Each file compiles with the cantools a fresh install
gets; every message it skips has its one warning line; random payloads of
every compiled message (FRAMES_PER_MESSAGE each) decode in the real
MicroPython unix port as cantools decodes them, on the fast and debug paths.
The reference is cantools' view of the file as the compiler loaded it.
"""

import os
import re
from pathlib import Path

import pytest

from conftest import run_micropython
from keidrive.dbccompiler import compile_dbc
from keidrive.dbccompiler.read import load_dbc
from keidrive.errors import KeidriveError
from keidrive.paths import firmware_dir
from test_dbc_differential import DECODE_SCRIPT, check_batch
from test_dbc_real import _frames

try:
    import opendbc
except ImportError:
    opendbc = None
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true and the opendbc package is not installed (pip install '.[test]')", pytrace=False)

PACKAGE = Path(opendbc.__file__).parent / "dbc" if opendbc else None
FILES = sorted(PACKAGE.rglob("*.dbc")) if PACKAGE else []
FRAMES_PER_MESSAGE = 2
# The largest modules here (hundreds of messages) are far over a board's heap: the unix port gets more.
pytestmark = pytest.mark.skipif(opendbc is None, reason="the opendbc package is not installed (the test extra)")


def _generator_output(path: Path) -> str | None:
    """What opendbc's generator makes of a template (None for a file that is no template)."""
    from opendbc.dbc.generator.generator import generate_all

    if "generator" not in path.parts or path.name.startswith("_"):
        return None
    return generate_all().get(path.stem + "_generated")


def _imports_on_disk(path: Path) -> bool:
    names = re.findall(r'^CM_ "IMPORT (.*?)";', path.read_text(encoding="utf-8"), re.MULTILINE)
    return all((path.parent / name).is_file() for name in names)


def test_the_package_holds_its_dbc_files():
    print(f"\nopendbc {opendbc.__version__ if hasattr(opendbc, '__version__') else ''}: {len(FILES)} DBC files")
    assert len(FILES) >= 100


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_package_dbc_compiles_and_decodes_as_cantools(path, tmp_path, capsys):
    generated = _generator_output(path)
    source = path
    if generated is not None and not _imports_on_disk(path):
        source = tmp_path / f"{path.stem}_generated.dbc"
        source.write_text(generated, encoding="utf-8")
    elif generated is not None:
        reference = tmp_path / f"{path.stem}_generated.dbc"
        reference.write_text(generated, encoding="utf-8")
        ours, theirs = load_dbc(path).database, load_dbc(reference).database
        assert [(m.name, m.frame_id, m.is_extended_frame) for m in ours.messages] == [
            (m.name, m.frame_id, m.is_extended_frame) for m in theirs.messages]
    try:
        text = compile_dbc([source])
    except KeidriveError as error:
        pytest.fail(f"{path.name} does not compile: {error}")
    warnings = capsys.readouterr().err.splitlines()
    skipped = re.findall(r"^# Skipped from (\S+): (\S+): (.*)$", text, re.MULTILINE)
    for file_name, message, why in skipped:
        line = f"keidrive: warning: {file_name}: message {message} skipped: {why}"
        assert line in warnings, (line, warnings)
    (tmp_path / "gen.py").write_text(text)
    (tmp_path / "keifw").symlink_to(firmware_dir() / "keifw")
    from keidrive.dbccompiler import exec_generated

    names = exec_generated(text)["MSG_NAMES"]
    batch = _frames(load_dbc(source).database, names, seed=path.name, per_message=FRAMES_PER_MESSAGE)
    frames = tmp_path / "frames.txt"
    frames.write_text(" ".join(f"{index}:{payload.hex()}" for index, _, payload in batch))
    checked = check_batch(batch, run_micropython(DECODE_SCRIPT, str(tmp_path), str(frames), heap="64M").splitlines())
    print(f"\n{path.relative_to(PACKAGE)}: {len(names)} messages, {len(skipped)} skipped, {checked} frames match")
