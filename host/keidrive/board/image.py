"""The base MicroPython image: check it is for the right chip, then flash it.

* ESP32 family: the combined ``.bin`` written by esptool at the chip's offset
  (0x1000 on the ESP32, 0x0 on the ESP32-S3). The image header (magic 0xE9)
  carries a chip id in its extended part, checked before anything is sent.
* RP2040: a UF2 file (family id 0xE48BFF56) copied onto the RPI-RP2 drive the
  ROM bootloader shows after ``machine.bootloader()`` (or BOOTSEL).
* STM32: a DfuSe ``.dfu`` file written with dfu-util after ``machine.bootloader()``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

from ..errors import KeidriveError
from .boards import BoardKind

ESP_CHIPS = {0: "ESP32", 2: "ESP32-S2", 5: "ESP32-C3", 9: "ESP32-S3", 12: "ESP32-C2", 13: "ESP32-C6", 16: "ESP32-H2"}
UF2_MAGIC = (0x0A324655, 0x9E5D5157)
UF2_FAMILIES = {
    0xE48BFF56: "RP2040",
    0xE48BFF57: "RP2XXX absolute",
    0xE48BFF59: "RP2350 (Arm secure)",
    0xE48BFF5A: "RP2350 (RISC-V)",
    0xE48BFF5B: "RP2350 (Arm non-secure)",
    0x1C5F21B0: "ESP32",
    0xBFDD4EEE: "ESP32-S2",
    0xC47E5767: "ESP32-S3",
    0x57755A57: "STM32F4",
    0xADA52840: "nRF52840",
}
RP2040_FAMILY = 0xE48BFF56
ESP_BAUD = 460800


def _what(data: bytes) -> str:
    if data[:4] == b"\x7fELF":
        return "an ELF file"
    if len(data) >= 8 and struct.unpack_from("<II", data) == UF2_MAGIC:
        if len(data) >= 32 and struct.unpack_from("<I", data, 8)[0] & 0x2000:
            family = struct.unpack_from("<I", data, 28)[0]
            return f"a UF2 image for {UF2_FAMILIES.get(family, hex(family))}"
        return "a UF2 image"
    if data[:5] == b"DfuSe":
        return "a DfuSe (STM32) image"
    if data[:1] == b"\xe9" and len(data) >= 14:
        chip = struct.unpack_from("<H", data, 12)[0]
        return f"an ESP image for {ESP_CHIPS.get(chip, f'chip id {chip}')}"
    return "not a MicroPython image keidrive recognises"


def check_image(path: str | os.PathLike, kind: BoardKind) -> bytes:
    """The image's bytes if it is for ``kind``; else one clear error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise KeidriveError(f"cannot read base firmware {path}: {error.strerror}") from None
    if kind.image == "esp-bin":
        if data[:1] == b"\xe9" and len(data) >= 14:
            chip = struct.unpack_from("<H", data, 12)[0]
            if chip == kind.esp_chip_id:
                return data
            raise KeidriveError(
                f"{path.name} is an image for the {ESP_CHIPS.get(chip, f'chip id {chip}')}, not the {kind.chip}: "
                f"download the {kind.name} build"
            )
    elif kind.image == "uf2":
        if len(data) >= 32 and struct.unpack_from("<II", data) == UF2_MAGIC:
            flags, family = struct.unpack_from("<I", data, 8)[0], struct.unpack_from("<I", data, 28)[0]
            if not flags & 0x2000 or family == RP2040_FAMILY:
                return data
            raise KeidriveError(
                f"{path.name} is a UF2 image for {UF2_FAMILIES.get(family, hex(family))}, not the RP2040"
            )
    elif kind.image == "dfu":
        if data[:5] == b"DfuSe":
            return data
    raise KeidriveError(f"{path.name} is {_what(data)}, not a {kind.name} MicroPython image")


def flash_command(kind: BoardKind, port: str, path: str) -> list[str]:
    """The command line that writes the image (what --dry-run shows)."""
    if kind.image == "esp-bin":
        return [sys.executable, "-m", "esptool", "--chip", kind.name, "--port", port, "--baud", str(ESP_BAUD),
                "write-flash", "-z", hex(kind.flash_offset), str(path)]
    if kind.image == "uf2":
        return ["machine.bootloader()", "->", "copy", str(path), "to the RPI-RP2 drive"]
    return ["machine.bootloader()", "->", "dfu-util", "-a", "0", "-D", str(path)]


def flash_base(kind: BoardKind, port: str, path: str, log, uf2_drive: str | None = None) -> None:
    if kind.image == "esp-bin":
        command = flash_command(kind, port, path)
        log("$ " + " ".join(command[2:]))
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
            last = next((line for line in reversed(lines) if "error" in line.lower() or "fatal" in line.lower()),
                        lines[-1] if lines else f"exit status {result.returncode}")
            raise KeidriveError(f"esptool could not flash {kind.name} on {port}: {last.strip()}")
        _wait_for_port(port, 15.0)
        return
    if kind.image == "uf2":
        _enter_bootloader(port, log)
        drive = Path(uf2_drive) if uf2_drive else _find_rp2_drive(20.0)
        log(f"copying {Path(path).name} to {drive}")
        shutil.copyfile(path, drive / Path(path).name)
        _wait_for_port(port, 20.0)
        return
    tool = shutil.which("dfu-util")
    if tool is None:
        raise KeidriveError("dfu-util not found: install it to flash the STM32 base image")
    _enter_bootloader(port, log)
    time.sleep(2.0)
    result = subprocess.run([tool, "-a", "0", "-D", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise KeidriveError(f"dfu-util failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    _wait_for_port(port, 20.0)


def _enter_bootloader(port: str, log) -> None:
    from .client import Board

    log("asking MicroPython to enter the ROM bootloader")
    board = Board(port, soft_reset=False)
    try:
        board.transport.exec_raw_no_follow("import machine\nmachine.bootloader()")
    finally:
        try:
            board.transport.close()
        except OSError:
            pass


def _find_rp2_drive(timeout: float) -> Path:
    user = os.environ.get("USER", "")
    candidates = [f"/media/{user}/RPI-RP2", f"/run/media/{user}/RPI-RP2", "/media/RPI-RP2", "/Volumes/RPI-RP2"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for candidate in candidates:
            if (Path(candidate) / "INFO_UF2.TXT").is_file():
                return Path(candidate)
        time.sleep(0.5)
    raise KeidriveError("the RPI-RP2 drive did not appear: hold BOOTSEL while plugging the board in, "
                        "mount it, and pass --uf2-drive")


def _wait_for_port(port: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    time.sleep(1.0)
    while time.monotonic() < deadline:
        if os.path.exists(port):
            time.sleep(1.5)  # MicroPython's first boot formats its file system
            return
        time.sleep(0.25)
    raise KeidriveError(f"{port} did not come back after flashing the base image")
