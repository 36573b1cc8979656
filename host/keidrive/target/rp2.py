"""MicroPython's rp2 port for the Raspberry Pi Pico (board RPI_PICO), built with cmake.

The trimmed MicroPython source a user may hold (a release tarball) lacks the
rp2 port and the libraries it builds with: ``ports/rp2``, ``lib/pico-sdk``
(with tinyusb), ``lib/mbedtls``, ``lib/micropython-lib`` and
``lib/mbedtls_errors``. A full checkout has them; otherwise they come as
tarballs from the folder ``--rp2-src`` or ``$KEIDRIVE_RP2_SRC`` names, laid
over a private copy of the source in the cache.

That copy gets one fix: frozen ARMv6-M native and viper code must be 4-byte
aligned. On the Cortex-M0+ the emitter loads a long jump's offset and a
32-bit constant with ``ldr rX, [pc, #0]``, which reads from the word-aligned
PC, and pads with a ``nop`` where the code offset is 2 mod 4: that holds only
if the code starts on a word. tools/mpy-tool.py aligns frozen ARMv6-M code to
2 bytes (the list that gives ARMv6 and Xtensa 4 lacks ARMv6-M), so a viper
function that lands at 2 mod 4 jumps to a wrong address. Loaded from .mpy
files the code sits in the heap, 16-byte aligned, which is why only a frozen
image shows it.

Two images per build: ``base`` (the port as it ships, nothing of ours
frozen: what a user flashes before ``keidrive flash``) and the application
image, ``firmware/keifw`` and ``main.py`` frozen in (it boots into main.py),
cached by the firmware's hash as the qemu target's is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from ..errors import KeidriveError
from ..paths import firmware_dir

ENV_VAR = "KEIDRIVE_RP2_SRC"
BOARD = "RPI_PICO"
FLASH_BYTES = 2 * 1024 * 1024  # the Pico's W25Q16 (pico-sdk boards/pico.h)
FLASH_BASE = 0x10000000
UF2_FAMILY = "0xe48bff56"  # RP2040
# What the rp2 port needs beyond a trimmed source, and the tarball that brings each.
PARTS = {
    "ports/rp2/CMakeLists.txt": "mp-*-ports-rp2*.tar.xz",
    "lib/pico-sdk/pico_sdk_init.cmake": "pico-sdk-*.tar.xz",
    "lib/mbedtls/library/aes.c": "mbedtls-*.tar.xz",
    "lib/micropython-lib/README.md": "micropython-lib-*.tar.xz",
}
_ALIGN_LIST = "        if config.native_arch in (\n            MP_NATIVE_ARCH_ARMV6,\n"
_ALIGN_FIXED = _ALIGN_LIST + "            MP_NATIVE_ARCH_ARMV6M,\n"


def overlays(root: Path, given: str | None) -> list[Path]:
    """The tarballs that complete ``root`` for the rp2 port (none for a full checkout)."""
    missing = [part for part in PARTS if not (root / part).is_file()]
    if not missing:
        return []
    chosen = given or os.environ.get(ENV_VAR)
    if not chosen:
        raise KeidriveError(
            f"the MicroPython source has no {missing[0]}: pass --rp2-src DIR or set {ENV_VAR} to a folder holding "
            f"the rp2 port's tarballs ({', '.join(PARTS[p] for p in missing)}), or use a MicroPython v1.28 checkout "
            "with its submodules"
        )
    folder = Path(chosen).expanduser()
    found = []
    for part in missing:
        matches = sorted(folder.glob(PARTS[part])) if folder.is_dir() else []
        if not matches:
            raise KeidriveError(f"{ENV_VAR}={chosen}: no {PARTS[part]} there (it brings {part})")
        found.append(matches[-1])
    return found


def prepare(root: Path, tarballs: list[Path], dest: Path, align_fix: bool) -> Path:
    """A copy of ``root`` with ``tarballs`` laid over it and mpy-tool.py fixed, made once."""
    done = dest / ".keidrive-complete"
    tree = dest / "micropython"
    if done.is_file():
        return tree
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(root, tree, symlinks=True, ignore=shutil.ignore_patterns("build", "build-*"))
    for tarball in tarballs:
        try:
            with tarfile.open(tarball) as archive:
                archive.extractall(tree, filter="data")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise KeidriveError(f"{tarball}: not a readable tarball ({error})") from None
    if align_fix:
        fix_alignment(tree / "tools" / "mpy-tool.py")
    done.write_text("\n".join(str(t) for t in tarballs) + "\n")
    return tree


def fix_alignment(mpy_tool: Path) -> None:
    """Add ARMv6-M to mpy-tool.py's 4-byte alignment list for frozen native code."""
    text = mpy_tool.read_text()
    if _ALIGN_FIXED in text:
        return  # a MicroPython that has the fix
    if text.count(_ALIGN_LIST) != 1:
        raise KeidriveError(f"{mpy_tool}: the native-code alignment list is not where keidrive expects it "
                            "(a MicroPython other than v1.28?)")
    mpy_tool.write_text(text.replace(_ALIGN_LIST, _ALIGN_FIXED))


def storage_bytes(tree: Path) -> int:
    """The board's LittleFS region at the top of flash (mpconfigboard.h)."""
    header = (tree / "ports" / "rp2" / "boards" / BOARD / "mpconfigboard.h").read_text()
    found = re.search(r"MICROPY_HW_FLASH_STORAGE_BYTES\s+\((\d+) \* 1024\)", header)
    if not found:
        raise KeidriveError(f"{BOARD}'s mpconfigboard.h does not give MICROPY_HW_FLASH_STORAGE_BYTES as N * 1024")
    return int(found.group(1)) * 1024


def manifest(tree: Path) -> str:
    """The port's own frozen modules, then every package and module at the top of ``tree``."""
    lines = ["# generated by keidrive (target/rp2.py): the port's modules, then the application, frozen",
             'include("$(PORT_DIR)/boards/manifest.py")']
    for path in sorted(tree.iterdir()):
        if path.is_dir() and (path / "__init__.py").is_file():
            lines.append(f"package({path.name!r}, base_path={str(tree)!r}, opt=3)")
        elif path.suffix == ".py":
            lines.append(f"module({path.name!r}, base_path={str(tree)!r}, opt=3)")
    return "\n".join(lines) + "\n"


def build_image(tree: Path, build: Path, manifest_path: Path | None, log: Path) -> dict:
    """Configure and build the port in ``build``; the UF2 beside firmware.elf and the image's figures."""
    from .builder import make

    port = tree / "ports" / "rp2"
    configure = ["cmake", "-S", str(port), "-B", str(build), "-DPICO_BUILD_DOCS=0", f"-DMICROPY_BOARD={BOARD}",
                 f"-DMICROPY_BOARD_DIR={port / 'boards' / BOARD}", "-DPICO_NO_PICOTOOL=1"]
    if manifest_path is not None:
        configure.append(f"-DMICROPY_FROZEN_MANIFEST={manifest_path}")
        # makemanifest reuses a frozen .mpy newer than its source: from
        # another tree that may be the wrong module, so every build recompiles
        shutil.rmtree(build / "frozen_mpy", ignore_errors=True)
    _run(configure, log, "cmake")
    make(build, [], log)
    elf = build / "firmware.elf"
    uf2 = build / "firmware.uf2"
    _run([sys.executable, str(tree / "tools" / "uf2conv.py"), "-b", hex(FLASH_BASE), "-f", UF2_FAMILY, "-c",
          "-o", str(uf2), str(build / "firmware.bin")], log, "uf2conv.py")
    return figures(elf, uf2, storage_bytes(tree))


def figures(elf: Path, uf2: Path, storage: int) -> dict:
    """Flash the image takes and leaves (the application region is the flash below the
    file system), the UF2's size, and the GC heap (the RAM left after static data and stacks)."""
    from .freeze import text_bytes

    image = text_bytes(elf)
    symbols = _symbols(elf, ("__GcHeapStart", "__GcHeapEnd"))
    region = FLASH_BYTES - storage
    return {
        "uf2_bytes": uf2.stat().st_size,
        "flash_bytes": image,
        "flash_bytes_left": region - image,
        "heap_size": symbols["__GcHeapEnd"] - symbols["__GcHeapStart"],
        "storage_offset": region,
        "storage_bytes": storage,
    }


def _symbols(elf: Path, names: tuple) -> dict:
    try:
        out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise KeidriveError(f"cannot list the symbols of {elf}: {error}") from None
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in names:
            found[parts[2]] = int(parts[0], 16)
    if set(found) != set(names):
        raise KeidriveError(f"{elf}: no {', '.join(sorted(set(names) - set(found)))}")
    return found


def native_functions(elf: Path) -> dict:
    """Address of every frozen native or viper function's machine code: the
    ``fun_data_...`` arrays mpy-tool puts in .text (bytecode goes to .rodata)."""
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (line.split() for line in out.splitlines())
            if len(parts) == 3 and parts[1] in "tT" and parts[2].startswith("fun_data_")}


def _run(command: list[str], log: Path, what: str) -> None:
    with log.open("a") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        lines = log.read_text(errors="replace").strip().splitlines()
        raise KeidriveError(f"{what} failed ({lines[-1] if lines else 'no output'}); full log: {log}")


def application(tree_root: Path, out: Path, app: Path | None = None) -> tuple[Path, dict]:
    """The application image (``app``, default the bundled firmware, frozen in) and its figures, cached."""
    from .builder import locked
    from .freeze import KEEP_IMAGES, firmware_hash

    app = Path(app or firmware_dir()).resolve()
    uf2 = out / f"app-{firmware_hash(app)}.uf2"
    record = uf2.with_suffix(".json")
    if not record.is_file():
        with locked(out / "app.lock"):
            if not record.is_file():
                manifest_path = out / "manifest.py"
                manifest_path.write_text(manifest(app))
                result = build_image(tree_root, out / "build-app", manifest_path, out / "build.log")
                shutil.copyfile(out / "build-app" / "firmware.uf2", uf2)
                shutil.copyfile(out / "build-app" / "firmware.elf", uf2.with_suffix(".elf"))
                record.write_text(json.dumps(result))
                for stale in sorted(out.glob("app-*.json"), key=lambda p: p.stat().st_mtime)[:-KEEP_IMAGES]:
                    for suffix in (".json", ".uf2", ".elf"):
                        stale.with_suffix(suffix).unlink(missing_ok=True)
    return uf2, json.loads(record.read_text())
