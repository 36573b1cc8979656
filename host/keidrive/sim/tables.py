"""The simulator's tables of a DBC (``frames.MessageCodec`` of every
message), kept between runs in keidrive's cache: reading a DBC takes
cantools, the largest import of a drive, and a run only needs the tables.

A cache file is named by a hash of the DBC's bytes and of the codec's own
source, so an edited DBC or a new keidrive never meets a stale table. Like
the built targets beside them, the files are this user's own: the folder is
created 0700 and a file another user owns or others may write is ignored.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import tempfile
from pathlib import Path

from ..paths import cache_dir


def _key(dbc: Path) -> str:
    digest = hashlib.sha256(dbc.read_bytes())
    digest.update(Path(__file__).with_name("frames.py").read_bytes())
    digest.update(str(pickle.HIGHEST_PROTOCOL).encode())
    return digest.hexdigest()[:24]


def _own(path: Path, kind) -> bool:
    """A ``kind`` (stat.S_ISREG, S_ISDIR) at ``path``, not a link, that is
    this user's and that nobody else may write."""
    info = os.stat(path, follow_symlinks=False)
    return kind(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def cached(dbc: Path, build):
    """``build()`` (the codecs of ``dbc``), from the cache when it holds them."""
    try:
        path = cache_dir() / "tables" / f"{dbc.stem}-{_key(dbc)}.pickle"
    except OSError:
        return build()
    try:
        if _own(path.parent, stat.S_ISDIR) and _own(path, stat.S_ISREG):
            with open(path, "rb") as cached_file:
                return pickle.load(cached_file)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError):
        pass  # absent, another user's, or unreadable: built again below
    tables = build()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")  # created 0600
        with os.fdopen(handle, "wb") as out:
            pickle.dump(tables, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only cache only costs the time to read the DBC
    return tables
