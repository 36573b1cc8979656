"""The firmware type-checks against each board's MicroPython stubs.

The ESP32 and RP2040 stub packages install the same module names (machine,
micropython...) into one site-packages, the later overwriting the earlier, so
each port's stubs are unpacked into a folder of their own and pyright runs
once per port with that folder as its stub path.
"""

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUB_PACKAGES = {"esp32": "micropython-esp32-stubs", "rp2": "micropython-rp2-stubs"}


def port_stubs(port: str) -> Path:
    """The port's stubs in build/stubs/PORT, at the version the test extra installed."""
    package = STUB_PACKAGES[port]
    version = importlib.metadata.version(package)
    target = ROOT / "build" / "stubs" / f"{port}-{version}"
    if not (target / "machine").exists() and not (target / "machine.pyi").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
             f"{package}=={version}"],
            check=True, timeout=300,
        )
    return target


@pytest.mark.parametrize("port", sorted(STUB_PACKAGES))
def test_firmware_type_checks_against_the_board_stubs(port):
    stubs = port_stubs(port)
    # pyright resolves a config's paths from the config's own folder, and
    # takes that folder as the project root: the config lives in build/.
    config = ROOT / "build" / f"pyrightconfig-{port}.json"
    config.write_text(json.dumps({
        "extends": "../pyproject.toml",
        "include": ["../firmware"],
        "exclude": ["../firmware/keifw/vehicles"],
        "extraPaths": ["../firmware"],
        "stubPath": str(stubs.relative_to(config.parent)),
    }))
    result = subprocess.run(
        [sys.executable, "-m", "pyright", "--project", str(config), "--outputjson"],
        capture_output=True, text=True, timeout=600,
    )
    report = json.loads(result.stdout)
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    listing = "\n".join(f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}" for d in errors)
    analyzed = report["summary"]["filesAnalyzed"]
    print(f"\n{port}: {analyzed} firmware files type-checked, {len(errors)} errors")
    assert analyzed >= len(list((ROOT / "firmware").rglob("*.py"))) - len(list((ROOT / "firmware" / "keifw" / "vehicles").glob("*.py")))
    assert not errors, listing
