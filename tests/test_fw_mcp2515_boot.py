"""Boards boot on the CAN controller they have: flash plans, boot detection, a failing controller.

The boot tests run firmware/main.py in the MicroPython unix port with the
virtual board's ``machine`` (keidrive/board/vboard/kd_machine.py), which
offers machine.CAN only where upstream MicroPython v1.28 does and numbers
its controllers from 1, and carries an MCP2515 (the datasheet model) on the
SPI bus the board kind wires it to.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import keidrive.board
from keidrive.board.boards import BOARDS
from keidrive.errors import KeidriveError
from keidrive.paths import firmware_dir
from keidrive.runtime import micropython_command

VBOARD = Path(keidrive.board.__file__).resolve().parent / "vboard"

try:
    MP = micropython_command()
except KeidriveError:
    MP = None
needs_mp = pytest.mark.skipif(MP is None, reason="needs the MicroPython unix port (or $KEIDRIVE_MICROPYTHON)")


def plan(board, *args):
    proc = subprocess.run([sys.executable, "-m", "keidrive", "flash", "--board", board, "--dry-run", "--json", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("board", ["esp32", "esp32s3", "rp2040", "stm32"])
def test_mcp2515_or_machine_can_in_the_dry_run_plan(board):
    from keidrive.fwconfig import require_valid  # the firmware's own config.py, under CPython

    p = plan(board, "--port", "/dev/does-not-exist")  # a dry run contacts nothing
    assert set(p) == {"board", "arch", "config", "files"}
    assert p["board"] == board and p["arch"] == BOARDS[board].archs[0]
    cfg = p["config"]
    assert require_valid(cfg) == cfg
    if board == "stm32":
        assert cfg == {"can_port": "machine", "can_id": 1}
    else:
        assert cfg["can_port"] == "mcp2515"
        assert {"mcp2515_spi", "pin_sck", "pin_mosi", "pin_miso", "pin_cs", "pin_int"} <= set(cfg)
    paths = [f["path"] for f in p["files"]]
    assert "main.py" in paths and "keifw/mcp2515.mpy" in paths
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in p["files"])


def test_mcp2515_dry_run_config_is_what_config_json_will_hold():
    p = plan("rp2040", "--vehicle", "alto-hybrid", "--profile", "us-interstate")
    assert p["config"]["vehicle"] == "kei_hybrid_660" and p["config"]["profile"] == "us-interstate"
    proc = subprocess.run([sys.executable, "-m", "keidrive", "flash", "--board", "rp2040", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "--dry-run" in proc.stderr and "Traceback" not in proc.stderr


BOOT = r"""
import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import kd_machine
kd_machine._configure("-", sys.argv[3], sys.argv[4])
sys.modules["machine"] = kd_machine
import main
from keifw import app, config
cfg = dict(config.DEFAULTS)
cfg.update(__CFG__)
port, err = main.open_port(cfg, app.vehicle_module(cfg["vehicle"]))
print(type(port).__name__ if port is not None else None)
print(err)
"""


def boot_port(platform, wiring, cfg):
    proc = subprocess.run([MP, "-c", BOOT.replace("__CFG__", repr(cfg)), str(firmware_dir()), str(VBOARD),
                           platform, wiring], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kind, err = proc.stdout.splitlines()[-2:]
    return kind, err


@needs_mp
def test_mcp2515_esp32_has_no_machine_can_and_says_so():
    kind, err = boot_port("esp32", "2,5,4", {"can_port": "machine"})
    assert kind == "None"
    assert "no machine.CAN" in err and "mcp2515" in err


@needs_mp
def test_mcp2515_stm32_machine_can_counts_from_1():
    assert boot_port("pyboard", "-", {"can_port": "machine", "can_id": 1}) == ("MachineCANPort", "None")
    kind, err = boot_port("pyboard", "-", {"can_port": "machine", "can_id": 3})
    assert kind == "None" and "CAN(3) doesn't exist" in err


@needs_mp
def test_mcp2515_on_the_wired_spi_bus_answers_and_elsewhere_is_a_clear_error():
    wired = {"can_port": "mcp2515", "mcp2515_spi": 2, "pin_sck": 18, "pin_mosi": 23, "pin_miso": 19,
             "pin_cs": 5, "pin_int": 4}
    assert boot_port("esp32", "2,5,4", wired) == ("MCP2515Port", "None")
    kind, err = boot_port("esp32", "2,5,4", dict(wired, mcp2515_spi=1))  # nothing on that bus
    assert kind == "None"
    assert err.startswith("can_port mcp2515: MCP2515Error: MCP2515 not in mode 0x80") and "0xff" in err


@needs_mp
def test_mcp2515_a_board_without_its_controller_logs_one_error_and_idles(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"can_port": "machine", "status_interval_s": 1}))
    script = BOOT.split("import main")[0] + (
        "import main\n"
        f"main.BOARD_CONFIG = {str(tmp_path / 'config.json')!r}\n"
        f"main.BOARD_DATA = {str(tmp_path / 'data')!r}\n"
        "main.board_main()\n")
    try:
        proc = subprocess.run([MP, "-c", script, str(firmware_dir()), str(VBOARD), "esp32", "2,5,4"],
                              capture_output=True, text=True, timeout=3.5)
        out, code = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as stopped:  # idling, as it should: still alive after 3.5 s
        out = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
        code = None
    assert code is None, out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and "no machine.CAN" in errors[0]["message"], events
    statuses = [e for e in events if e["type"] == "status"]
    assert statuses and all(s["bus"] == "stopped" and not s["valid"] for s in statuses), events
