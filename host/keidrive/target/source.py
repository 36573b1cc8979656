"""The MicroPython source a target is built from: a tree or a release tarball.

Builds never touch the user's tree: a tarball is extracted, and a tree is
copied, into the cache once per source hash, and every build happens there
(with its build folder outside the source, see builder.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

from ..errors import KeidriveError
from ..paths import cache_dir

ENV_VAR = "KEIDRIVE_MICROPYTHON_SRC"
VERSION = "1.28"

HINT = (
    f"no MicroPython source: pass --micropython-src DIR|TARBALL or set {ENV_VAR} to a MicroPython "
    f"v{VERSION} source tree or its release tarball (micropython-{VERSION}.0.tar.xz from micropython.org/download)"
)

# what a usable tree contains, relative to its root
_MARKERS = ("py/mpconfig.h", "ports/qemu/Makefile", "ports/unix/Makefile", "mpy-cross/Makefile")


def cache_root() -> Path:
    return cache_dir()


def locate(given: str | None) -> Path:
    """The source the user named (option first, then the environment)."""
    chosen = given or os.environ.get(ENV_VAR)
    if not chosen:
        raise KeidriveError(HINT)
    path = Path(chosen).expanduser()
    if not path.exists():
        origin = "--micropython-src" if given else ENV_VAR
        raise KeidriveError(f"{origin}={chosen}: no such file or folder")
    return path.resolve()


def fingerprint(path: Path) -> str:
    """A tarball's content hash; for a tree, a hash of every file's path,
    size and modification time (rehashing a whole tree's contents on every
    call would cost seconds, and an edit changes the mtime)."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()[:16]
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("build"))
        for name in sorted(files):
            stat = os.stat(os.path.join(folder, name))
            digest.update(f"{os.path.relpath(os.path.join(folder, name), path)}\0{stat.st_size}\0"
                          f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _root_of(tree: Path) -> Path | None:
    """The folder holding py/ and ports/: the tree itself or its one child
    (a release tarball unpacks into micropython-1.28.0/)."""
    for candidate in [tree, *sorted(p for p in tree.iterdir() if p.is_dir())]:
        if all((candidate / marker).is_file() for marker in _MARKERS):
            return candidate
    return None


def prepare(path: Path, key: str) -> Path:
    """A private copy of the source under the cache, made once per key."""
    dest = cache_root() / "src" / key
    done = dest / ".keidrive-complete"
    if done.is_file():
        return _root_of(dest) or dest
    if dest.exists():
        shutil.rmtree(dest)  # an interrupted extraction
    staging = dest.with_name(dest.name + f".tmp{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    if path.is_file():
        try:
            with tarfile.open(path) as archive:
                archive.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise KeidriveError(f"{path}: not a readable source tarball ({error})") from None
    else:
        shutil.copytree(path, staging / "micropython", symlinks=True,
                        ignore=shutil.ignore_patterns("build", "build-*"))
    if _root_of(staging) is None:
        shutil.rmtree(staging, ignore_errors=True)
        raise KeidriveError(
            f"{path}: not a MicroPython source (no {', '.join(_MARKERS)}); {HINT.split(': ', 1)[1]}"
        )
    (staging / ".keidrive-complete").write_text(str(path) + "\n")
    try:
        staging.rename(dest)
    except OSError:  # another build finished the same extraction first
        shutil.rmtree(staging, ignore_errors=True)
    return _root_of(dest) or dest
