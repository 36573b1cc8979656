"""The documentation: the docs/ site builds with `mkdocs build --strict`
(every link and anchor resolves, every page is in the nav), the README is a
front page of at most 200 lines that starts with the two commands, and the
hardware guide's wiring table says what the flash writes."""

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

README = ROOT / "README.md"
TWO_COMMANDS = ('pip install . && keidrive run', 'pip install ".[test]" && pytest')


def test_the_site_builds_strictly(tmp_path):
    if shutil.which("mkdocs") is None and subprocess.run(
            [sys.executable, "-m", "mkdocs", "--version"], capture_output=True, timeout=60).returncode != 0:
        reason = 'mkdocs is not installed (pip install ".[test]")'
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "hardware" / "index.html").is_file()


def test_the_readme_is_a_front_page_that_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    commands = [line for line in re.findall(r"```sh\n(.*?)```", text, re.S)[:2]]
    assert [block.strip().splitlines()[-1] for block in commands] == list(TWO_COMMANDS)
    assert text.index(TWO_COMMANDS[1]) < text.index("## ")  # before any section


def test_the_wiring_table_is_what_a_flash_writes():
    from keidrive.board.boards import BOARDS

    wiring = (ROOT / "docs" / "hardware.md").read_text().split("## Wiring", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in wiring.splitlines() if line.startswith("| ")}
    for name, kind in BOARDS.items():
        pins = dict(kind.can_config)
        if "pin_sck" not in pins:
            continue  # the board's own controller: no SPI wiring
        cells = [cell.strip() for cell in rows[name].split("|")[2:-1]]
        assert cells[0].split()[0] == str(pins["mcp2515_spi"]), name
        numbers = [int(re.search(r"\d+", cell).group()) for cell in cells[1:]]
        assert numbers == [pins[key] for key in ("pin_sck", "pin_mosi", "pin_miso", "pin_cs", "pin_int")], name
