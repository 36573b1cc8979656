"""Where the bundled firmware and DBC trees live.

In a wheel they are package data under ``keidrive/_data``; in a source
checkout (editable install, tests) they are the top-level ``firmware/`` and
``dbc/`` folders, the single source of truth.
"""

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_DATA = _PACKAGE / "_data"
_CHECKOUT = _PACKAGE.parents[1]


def _data_dir(name: str) -> Path:
    bundled = _DATA / name
    if bundled.is_dir():
        return bundled
    return _CHECKOUT / name


def firmware_dir() -> Path:
    return _data_dir("firmware")


def dbc_dir() -> Path:
    return _data_dir("dbc")


def resources_dir() -> Path:
    """Data that belongs to the host package itself (cycles, vehicle presets)."""
    return _PACKAGE / "resources"


def cache_dir() -> Path:
    """keidrive's cache: built targets, the simulator's tables."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keidrive"
