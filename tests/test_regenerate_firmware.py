"""`keidrive dbc compile --firmware` regenerates the checkout it is run in
(or --tree), never a copy inside site-packages, and writes files others can read."""

import shutil
import stat
import subprocess
import sys

from keidrive.paths import dbc_dir, firmware_dir

VEHICLES = ("kei_turbo_660.py", "kei_hybrid_660.py", "kei_ev.py")


def checkout_copy(root):
    """The parts of a checkout --firmware reads and writes, vehicle modules left out."""
    shutil.copytree(dbc_dir(), root / "dbc")
    shutil.copytree(firmware_dir(), root / "firmware", ignore=shutil.ignore_patterns("vehicles", "__pycache__"))
    (root / "firmware" / "keifw" / "vehicles").mkdir()
    (root / "firmware" / "keifw" / "vehicles" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text('[project]\nname = "keidrive"\n')
    return root


def keidrive(*args, cwd, code=None):
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "keidrive", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_written(root, result):
    assert result.returncode == 0, result.stderr
    for name in VEHICLES:
        path = root / "firmware" / "keifw" / "vehicles" / name
        assert f"wrote {path}" in result.stdout, result.stdout
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044  # group and others read it
        assert path.read_text() == (firmware_dir() / "keifw" / "vehicles" / name).read_text()


def test_tree_option(tmp_path):
    root = checkout_copy(tmp_path / "checkout")
    assert_written(root, keidrive("dbc", "compile", "--firmware", "--tree", str(root), cwd=tmp_path))


def test_the_checkout_around_the_working_directory(tmp_path):
    root = checkout_copy(tmp_path / "checkout")
    assert_written(root, keidrive("dbc", "compile", "--firmware", cwd=root / "firmware" / "keifw"))


# keidrive as a wheel installs it: the trees are package data, no checkout around.
INSTALLED = """
import sys
from pathlib import Path
import keidrive.paths as paths
data = Path(sys.argv[1])
paths.firmware_dir = lambda: data / "firmware"
paths.dbc_dir = lambda: data / "dbc"
from keidrive.cli import main
main(sys.argv[2:])
"""


def test_an_installed_copy_is_refused_saying_where_and_why(tmp_path):
    data = checkout_copy(tmp_path / "site-packages" / "keidrive" / "_data")
    (data / "pyproject.toml").unlink()
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    result = keidrive(str(data), "dbc", "compile", "--firmware", cwd=elsewhere, code=INSTALLED)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(data / "firmware") in line and "--tree" in line and "pip install -e" in line
    assert not list((data / "firmware" / "keifw" / "vehicles").glob("kei_*.py"))


def test_tree_that_is_not_a_checkout_is_one_line(tmp_path):
    result = keidrive("dbc", "compile", "--firmware", "--tree", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "not a keidrive checkout" in line
