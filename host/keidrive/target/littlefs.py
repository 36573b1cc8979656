"""The Pico's file system as an image: made and read by MicroPython's own
LittleFS (``vfs.VfsLfs2`` in the unix port) with the parameters the rp2
port mounts it with (ports/rp2/modules/_boot.py: 4 KiB blocks, progsize 256),
so the emulated Pico mounts it as a real one mounts its flash.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ..errors import KeidriveError
from ..runtime import micropython_command

BLOCK = 4096

_SCRIPT = r"""
import sys, vfs, os

class Blocks:
    # a block device over a bytearray, as rp2.Flash is over the flash
    def __init__(self, data):
        self.data = data
    def readblocks(self, n, buf, off=0):
        o = n * 4096 + off
        buf[:] = self.data[o:o + len(buf)]
    def writeblocks(self, n, buf, off=0):
        o = n * 4096 + off
        self.data[o:o + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // 4096
        if op == 5:
            return 4096
        if op == 6:
            self.data[arg * 4096:(arg + 1) * 4096] = b"\xff" * 4096
            return 0

def copy_in(fs, src, dst):
    for name in os.listdir(src):
        s = src + "/" + name
        d = dst + "/" + name
        if os.stat(s)[0] & 0x4000:
            fs.mkdir(d)
            copy_in(fs, s, d)
        else:
            with open(s, "rb") as f, fs.open(d, "wb") as g:
                g.write(f.read())

def copy_out(fs, src, dst):
    for entry in fs.ilistdir(src):
        s = src.rstrip("/") + "/" + entry[0]
        d = dst + "/" + entry[0]
        if entry[1] & 0x4000:
            os.mkdir(d)
            copy_out(fs, s, d)
        else:
            with fs.open(s, "rb") as f, open(d, "wb") as g:
                g.write(f.read())

action, image, folder = sys.argv[1], sys.argv[2], sys.argv[3]
if action == "make":
    bdev = Blocks(bytearray(b"\xff" * int(sys.argv[4])))
    vfs.VfsLfs2.mkfs(bdev, progsize=256)
    fs = vfs.VfsLfs2(bdev, progsize=256)
    copy_in(fs, folder, "")
    fs.umount()
    with open(image, "wb") as f:
        f.write(bdev.data)
else:
    with open(image, "rb") as f:
        bdev = Blocks(bytearray(f.read()))
    copy_out(vfs.VfsLfs2(bdev, progsize=256), "/", folder)
"""


def _run(*args: str) -> None:
    # the image (the Pico's 1408 KiB) is held in the unix port's heap
    result = subprocess.run([micropython_command(), "-X", "heapsize=8M", "-c", _SCRIPT, *args],
                            capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise KeidriveError(f"LittleFS image ({args[0]}): {last[0]}")


def make_image(image: Path, size: int, folder: Path) -> None:
    """``image``: a ``size``-byte LittleFS holding ``folder``'s files and folders at its root."""
    if size % BLOCK:
        raise KeidriveError(f"a LittleFS image of {size} bytes: not whole {BLOCK}-byte blocks")
    _run("make", str(image), str(folder), str(size))


def read_image(image: Path, folder: Path) -> None:
    """Every file and folder of the LittleFS ``image`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    _run("read", str(image), str(folder))


def image_with(image: Path, size: int, files: dict) -> None:
    """An image holding ``files`` ({path in the file system: bytes, or None for a folder})."""
    with tempfile.TemporaryDirectory(prefix="keidrive-lfs-") as tmp:
        root = Path(tmp)
        for name, data in files.items():
            path = root / name.lstrip("/")
            if data is None:
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        make_image(image, size, root)
