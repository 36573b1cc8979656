"""Building MicroPython's qemu (MPS2-AN385, Cortex-M3), 32-bit unix and rp2 (Raspberry Pi Pico) ports.

Every build runs in the cache (``source.cache_root()/targets``), in a folder
keyed by the source's hash and the build options, with a lock so concurrent
calls (two test sessions) build once and share the result. A build that
finished leaves ``target.json``; the next call with the same key reads it and
runs nothing.

The qemu target has two images from the same options: ``base`` (the port as
MicroPython ships it, for .mpy files brought over ``mpremote mount``) and the
application image with ``firmware/`` frozen in (see freeze.py), the way a
production board ships it. So has the rp2040 target (rp2.py): the stock
RPI_PICO UF2 and the application UF2 a user drags onto a Pico.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..errors import KeidriveError
from . import source, toolchain

TARGETS = ("qemu", "unix32", "rp2040")
DEFAULT_HEAP = 128 * 1024
MPY_ARCH = {"qemu": "armv7m", "unix32": "x86", "rp2040": "armv6m"}
# Bumped when the recipe below changes, so old cache entries are not reused.
RECIPE = "1"
JOBS = "-j2"


@dataclass(frozen=True)
class Target:
    target: str
    path: str  # qemu, rp2040: the application image (firmware frozen); unix32: the micropython binary
    heap_size: int | None  # qemu, rp2040: the port's fixed heap; unix32 grows its heap on demand (None)
    mpy_arch: str
    base: str | None = None  # qemu, rp2040: the image without the application
    src: str | None = None  # the extracted source root (its mpy-cross builds .mpy files)
    image: dict | None = None  # rp2040: the application image's figures (rp2.figures)

    def summary(self) -> dict:
        """What ``keidrive target build --json`` prints."""
        out = {"target": self.target, "path": self.path, "heap_size": self.heap_size, "mpy_arch": self.mpy_arch}
        if self.image:
            out.update({key: self.image[key] for key in ("uf2_bytes", "flash_bytes", "flash_bytes_left")})
            out["base"] = self.base
        return out


def build_options(target: str, heap: int | None) -> list[str]:
    common = ["MICROPY_PY_BTREE=0"]
    if target == "qemu":
        return common + ["BOARD=MPS2_AN385", f"MICROPY_HEAP_SIZE={heap}"]
    return common + ["MICROPY_FORCE_32BIT=1", "MICROPY_PY_FFI=0", "MICROPY_PY_SSL=0"]


@contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make(folder: Path, args: list[str], log: Path) -> None:
    """``make -C folder args``, its output in ``log``; a failure names the log's last line."""
    with log.open("a") as out:
        out.write(f"$ make -C {folder} {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(["make", "-C", str(folder), JOBS, *args], stdout=out, stderr=subprocess.STDOUT,
                                check=False)
    if result.returncode != 0:
        lines = log.read_text(errors="replace").strip().splitlines()
        raise KeidriveError(f"make in {folder} failed ({lines[-1] if lines else 'no output'}); full log: {log}")


def build(target: str, src: str | None = None, heap: int | None = None, *, rp2_src: str | None = None,
          align_fix: bool = True, app=None) -> Target:
    """Build (or find in the cache) ``target`` and return where it is. rp2040
    only: ``rp2_src`` (rp2.overlays), ``align_fix`` False leaves mpy-tool.py
    as MicroPython ships it (to show what the fix is for), ``app`` the tree
    frozen into the application image (default: the bundled firmware)."""
    if target not in TARGETS:
        raise KeidriveError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    if target == "qemu":
        heap = DEFAULT_HEAP if heap is None else heap
        if heap < 32 * 1024 or heap % 1024:
            raise KeidriveError(f"--heap {heap}: give a multiple of 1024 bytes, at least 32768")
    elif heap is not None:
        raise KeidriveError(f"--heap applies to the qemu target only (the {target} port's heap is "
                            f"{'what RAM leaves' if target == 'rp2040' else 'grown as needed'})")
    path = source.locate(src)
    src_key = source.fingerprint(path)
    if target == "rp2040":
        return _rp2040(path, src_key, rp2_src, align_fix, app)
    options = build_options(target, heap)
    key = hashlib.sha256(f"{RECIPE}\0{src_key}\0{target}\0{' '.join(options)}".encode()).hexdigest()[:16]
    out = source.cache_root() / "targets" / f"{target}-{key}"
    record = out / "target.json"
    if not record.is_file():
        toolchain.check(target)
        with locked(out.with_suffix(".lock")):
            if not record.is_file():  # not built while we waited for the lock
                _build_port(target, source.prepare(path, src_key), out, options, heap, record)
    result = Target(**json.loads(record.read_text()))
    if target == "qemu":
        from . import freeze

        # the application changes more often than the port: its image is
        # cached by the firmware's own hash (see freeze.py)
        result = replace(result, path=str(freeze.application_image(Path(result.src), out, options)))
    return result


def _build_port(target: str, root: Path, out: Path, options: list[str], heap: int | None, record: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    if target == "qemu":
        with locked(root / ".mpy-cross.lock"):
            make(root / "mpy-cross", [], log)  # freezing and .mpy files need the source's own mpy-cross
        make(root / "ports" / "qemu", [f"BUILD={out / 'build-base'}", "FROZEN_MANIFEST=", *options], log)
        base = str(out / "build-base" / "firmware.elf")
        result = Target("qemu", base, heap, MPY_ARCH["qemu"], base=base, src=str(root))
    else:
        make(root / "ports" / "unix", [f"BUILD={out / 'build'}", "FROZEN_MANIFEST=", *options], log)
        result = Target(target, str(out / "build" / "micropython"), None, MPY_ARCH[target], src=str(root))
    record.write_text(json.dumps(asdict(result), indent=1))


def _rp2040(path: Path, src_key: str, rp2_src: str | None, align_fix: bool, app) -> Target:
    from . import rp2

    root = source.prepare(path, src_key)
    tarballs = rp2.overlays(root, rp2_src)
    parts = "\0".join([src_key, *(source.fingerprint(t) for t in tarballs), f"align_fix={align_fix}"])
    key = hashlib.sha256(f"{RECIPE}\0rp2040\0{parts}".encode()).hexdigest()[:16]
    out = source.cache_root() / "targets" / f"rp2040{'' if align_fix else '-unfixed'}-{key}"
    record = out / "target.json"
    if not record.is_file():
        toolchain.check("rp2040")
        with locked(out.with_suffix(".lock")):
            if not record.is_file():
                out.mkdir(parents=True, exist_ok=True)
                tree = rp2.prepare(root, tarballs, out / "src", align_fix)
                log = out / "build.log"
                make(tree / "mpy-cross", [], log)
                if align_fix:
                    base = rp2.build_image(tree, out / "build-base", None, log)
                    stock = str(out / "build-base" / "firmware.uf2")
                    result = Target("rp2040", stock, base["heap_size"], MPY_ARCH["rp2040"], base=stock,
                                    src=str(tree), image=base)
                else:  # only ever an application image: no stock image (a whole port build) for it
                    result = Target("rp2040", "", None, MPY_ARCH["rp2040"], src=str(tree))
                record.write_text(json.dumps(asdict(result), indent=1))
    result = Target(**json.loads(record.read_text()))
    uf2, image = rp2.application(Path(result.src), out, app)
    return replace(result, path=str(uf2), heap_size=image["heap_size"], image=image)
