"""The rp2040 target: MicroPython's rp2 port for the Raspberry Pi Pico with the
firmware frozen in, on an emulated Pico (rp2040js under Node.js) whose MCP2515
on SPI0 is the project's register model (kd_mcp2515, written from the
datasheet here: the chip's side of these tests is our reading of it).

Needs the MicroPython source (KEIDRIVE_MICROPYTHON_SRC), the rp2 port's
sources (KEIDRIVE_RP2_SRC), the RP2040 boot ROM (KEIDRIVE_RP2040_BOOTROM) and
Node.js with npm; skips without them, fails without them under CI=true.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import keidrive
from keidrive.drive.harness import firmware_config, run_records
from keidrive.io import record
from keidrive.sim import load_cycle, load_vehicle, simulate
from keidrive.target import rp2, rp2040js
from test_target import micropython_source

CYCLE = "time_s,speed_kmh\n0,0\n3,0\n12,45\n18,30\n22,0\n24,0\n"
VALUE = 0x1234567  # what every function of the alignment module returns


def _needs(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{variable} is not set: CI must run the emulated Pico ({what})")
        pytest.skip(f"set {variable} to {what} to build and run the rp2040 target")
    return value


@pytest.fixture(scope="module")
def target():
    micropython_source()
    _needs(rp2.ENV_VAR, "a folder with the rp2 port's tarballs")
    _needs(rp2040js.BOOTROM_VAR, "the RP2040 B1 boot ROM")
    if shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no node on PATH: CI must run the emulated Pico")
        pytest.skip("the emulated Pico needs Node.js 18+ and npm")
    from keidrive.target import build

    return build("rp2040")


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    cycle = tmp_path_factory.mktemp("cycle") / "short.csv"
    cycle.write_text(CYCLE)
    return record.from_frames(simulate(load_vehicle("nbox-turbo"), load_cycle(str(cycle))).frames)


@pytest.mark.timeout(2400)  # the target fixture's first, cold build: the rp2 port twice (base, application)
def test_the_build_gives_a_uf2_for_a_pico_and_what_flash_and_ram_are_left(target):
    done = keidrive("target", "build", "rp2040", "--json", env=os.environ)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["path"] == target.path and summary["mpy_arch"] == "armv6m"
    uf2 = Path(summary["path"]).read_bytes()
    assert len(uf2) == summary["uf2_bytes"] and len(uf2) % 512 == 0
    for offset in range(0, len(uf2), 512):  # every block an RP2040 block inside the 2 MiB flash
        magic0, magic1, flags, address, size, _, _, family = (int.from_bytes(uf2[offset + 4 * k:offset + 4 * k + 4],
                                                                               "little") for k in range(8))
        assert (magic0, magic1, family) == (0x0A324655, 0x9E5D5157, 0xE48BFF56) and flags & 0x2000
        assert 0x10000000 <= address and address + size <= 0x10000000 + rp2.FLASH_BYTES - 1408 * 1024
    assert summary["flash_bytes"] + summary["flash_bytes_left"] == rp2.FLASH_BYTES - 1408 * 1024
    assert summary["flash_bytes_left"] > 0 and summary["heap_size"] > 200 * 1024
    assert Path(summary["base"]).is_file()
    text = keidrive("target", "build", "rp2040", env=os.environ).stdout
    assert "RPI-RP2" in text and f"{summary['flash_bytes_left']:,} left" in text


def test_without_the_rp2_sources_one_line_names_the_variable(tmp_path):
    src = micropython_source()
    env = {k: v for k, v in os.environ.items() if k != rp2.ENV_VAR}
    done = keidrive("target", "build", "rp2040", "--micropython-src", src, env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
    assert rp2.ENV_VAR in lines[0] and "--rp2-src" in lines[0] and "ports/rp2" in lines[0]


def test_without_the_boot_rom_one_line_names_the_variable(target, drive, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != rp2040js.BOOTROM_VAR}
    (tmp_path / "config.json").write_text(json.dumps(firmware_config("nbox-turbo")))
    done = subprocess.run([sys.executable, "-m", "keidrive.target.pico", "--stdin", "--config",
                           str(tmp_path / "config.json")], input=b"", capture_output=True, env=env, timeout=300,
                          check=False)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and rp2040js.BOOTROM_VAR in lines[0], done.stderr


def test_every_frozen_native_function_is_word_aligned(target):
    """The fix at work: ARMv6-M native and viper code frozen 4-byte aligned."""
    functions = rp2.native_functions(Path(target.path).with_suffix(".elf"))
    assert len(functions) >= 20  # the firmware's viper functions, from every module that has some
    assert [name for name, address in functions.items() if address % 4] == []


@pytest.fixture(scope="module")
def unfixed(target, tmp_path_factory):
    """An image built with mpy-tool.py as MicroPython v1.28 ships it, a module of
    viper functions of growing size frozen in (a whole port build, cached)."""
    from keidrive.target import build

    app = tmp_path_factory.mktemp("align")
    lines = ["import micropython"]
    for k in range(8):  # each 2 bytes of code longer than the one before: their starts alternate mod 4
        body = [f"    x{j} = {j + 1}" for j in range(k)]
        lines += ["@micropython.viper", f"def f{k}() -> int:", *body, f"    return {VALUE:#x}"]
    lines.append("FUNCTIONS = (" + ", ".join(f"f{k}" for k in range(8)) + ")")
    (app / "kd_align.py").write_text("\n".join(lines) + "\n")
    return build("rp2040", align_fix=False, app=app)


@pytest.mark.timeout(2400)  # the unfixed fixture: another whole port build when cold
def test_without_the_fix_viper_code_frozen_at_2_mod_4_reads_a_wrong_constant(unfixed):
    """ldr rX, [pc, #0] reads from the word-aligned PC: code that lands at an
    address 2 mod 4 takes its 32-bit constant (or long jump) from the wrong
    word. As the firmware's scanner did, crashing on the first records."""
    from keidrive.target.pico import run_script

    addresses = rp2.native_functions(Path(unfixed.path).with_suffix(".elf"))
    ours = {name: address for name, address in addresses.items() if name.startswith("fun_data_kd_align")}
    assert len(ours) == 8
    misaligned = sum(1 for address in ours.values() if address % 4)
    assert 0 < misaligned < 8
    out = run_script(unfixed, "import kd_align\nprint(' '.join(hex(f()) for f in kd_align.FUNCTIONS))\n")
    results = [int(word, 16) for word in out.split()]
    assert len(results) == 8
    assert sum(1 for value in results if value != VALUE) == misaligned, results


@pytest.mark.timeout(1200)  # two drives, the Pico's given 900 s
def test_the_trip_on_the_emulated_pico_matches_the_unix_ports(target, drive, tmp_path):
    """Frames through the MCP2515 at their own times, the firmware on the Pico's
    clock: the same trip as the 64-bit unix port's on the frames' timestamps,
    within what the two clocks can differ by (a frame reaches the board a
    fraction of a millisecond after its timestamp, and the board reads it at
    its next pass)."""
    # one periodic save, at 25 s: after the last frame (24 s), as a save's sector
    # erase stalls the core with interrupts off (docs/targets.md), and before the
    # Ctrl-C that ends the run (main.py does not save then)
    config = firmware_config("nbox-turbo", overrides={"save_interval_s": 25})
    reference = run_records(drive.tobytes(), config, timeout=120)
    assert reference.ok, reference.failure()
    data = tmp_path / "data"
    pico = run_records(drive.tobytes(), config, runtime="rp2040", timeout=900, workdir=tmp_path)
    assert pico.ok, pico.failure()
    ours, theirs = pico.trip, reference.trip
    assert abs(ours["distance_km"] - theirs["distance_km"]) <= 0.001 * theirs["distance_km"]
    assert abs(ours["fuel_l"] - theirs["fuel_l"]) <= 0.001 * theirs["fuel_l"]
    assert ours["eco_score"] == theirs["eco_score"] and ours["warnings"] == theirs["warnings"]
    last = pico.statuses[-1]
    assert last["overruns"] == 0 and last["bus"] == "active"
    assert (data / "trip_a.bin").is_file()  # the trip store, back from LittleFS


def test_keidrive_flash_onto_the_stock_image_and_the_firmware_reads_the_bus(target, drive, tmp_path):
    """The path most users take: MicroPython as it ships on the Pico, then
    keidrive flash the .mpy files over its USB console; after the reset main.py
    runs them with the MCP2515 and the drive's frames reach it."""
    records = tmp_path / "drive.rec"
    records.write_bytes(drive.tobytes())
    board = subprocess.Popen([sys.executable, "-m", "keidrive.target.picopty", "--stock", "--records", str(records)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = board.stdout.readline()
        assert first.startswith("pty: "), first + board.stderr.read()
        port = first.split(": ", 1)[1].strip()
        done = keidrive("flash", "--port", port, "--board", "rp2040", "--vehicle", "nbox-turbo", env=os.environ)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "the board is running main.py" in done.stdout
        status = _first_status_with_frames(port, deadline_s=300)
        assert status["bus"] == "active" and status["frames"] > 0 and status["overruns"] == 0
    finally:
        board.kill()
        board.wait(timeout=30)


def _first_status_with_frames(port: str, deadline_s: float) -> dict:
    import serial

    deadline = time.monotonic() + deadline_s
    text = b""
    with serial.Serial(port, 115200, timeout=0.5) as console:
        while time.monotonic() < deadline:
            text += console.read(4096)
            for line in text.split(b"\n"):
                found = re.match(rb'\{"type":"status".*\}', line.strip())
                if found:
                    status = json.loads(found.group(0))
                    if status["frames"] > 0:
                        return status
            text = text[-8192:]
    raise AssertionError(f"no status line with frames within {deadline_s} s: {text[-500:]!r}")


@pytest.mark.timeout(1200)  # the emulator at a third of real time on a saturated bus, slower when loaded
def test_the_bench_meets_the_board_budget_on_a_saturated_bus(target, tmp_path):
    """keidrive bench --target rp2040 on a short drive and 10 s of a saturated
    500 kbit/s bus: every frame drained (0 overruns, none lost in the chip),
    nothing allocated per frame, at least 64 KiB of heap left at the drive's
    lowest, and the MCP2515 path within 12,000 cycles a frame. Cycle counts are
    the emulator's, the same on every run: not a timing of this machine."""
    from keidrive.bench.pico import rp2040_figures

    cycle = tmp_path / "short.csv"
    cycle.write_text(CYCLE)
    figures = rp2040_figures("nbox-turbo", str(cycle), saturate_s=10, saturate_from_s=5.0)
    assert figures["saturated_bus_frames_per_s"] >= 4000
    assert figures["saturated_overruns"] == 0 and figures["saturated_frames_lost"] == 0
    assert figures["saturated_frames_received"] >= 9 * figures["saturated_bus_frames_per_s"]  # the flood passes the filters
    assert figures["drive_overruns"] == 0 and figures["alloc_bytes_per_frame"] == 0
    assert figures["heap_free_min"] >= 64 * 1024
    assert 0 < figures["cycles_per_frame_mcp2515"] <= 12_000
    assert "baudrate=8000000" in figures["spi"]  # 10 MHz asked; clk_peri at 48 MHz gives 8


def test_a_littlefs_image_reads_back_what_was_put_in(tmp_path):
    """The file system image the emulated Pico mounts, made and read by
    MicroPython's own VfsLfs2 (the unix port) with the rp2 port's block size."""
    from keidrive.target.littlefs import image_with, read_image

    image = tmp_path / "fs.img"
    files = {"/config.json": b'{"vehicle": "kei_turbo_660"}', "/data": None, "/data/trip_a.bin": bytes(range(256)) * 9}
    image_with(image, 64 * 4096, files)
    assert image.stat().st_size == 64 * 4096
    read_image(image, tmp_path / "out")
    assert (tmp_path / "out" / "config.json").read_bytes() == files["/config.json"]
    assert (tmp_path / "out" / "data" / "trip_a.bin").read_bytes() == files["/data/trip_a.bin"]
