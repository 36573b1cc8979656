"""The firmware's config schema, used on the host.

``firmware/keifw/config.py`` is the one definition (the firmware validates
its config at boot with it); the host loads that same module rather than
keeping a copy, so a value the host accepts is a value the firmware accepts.
"""

import importlib.util
from functools import cache

from .errors import KeidriveError
from .paths import firmware_dir


@cache
def firmware_module(name: str):
    """A self-contained data module of the firmware (``keifw/<name>.py``:
    config's schema, alerts' profile table) loaded under CPython. Its
    ``from micropython import const`` sees a stand-in only while it loads,
    so nothing else in this process mistakes CPython for MicroPython."""
    import sys
    import types

    path = firmware_dir() / "keifw" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"keidrive_firmware_{name}", path)
    module = importlib.util.module_from_spec(spec)
    stand_in = "micropython" not in sys.modules
    if stand_in:
        sys.modules["micropython"] = types.SimpleNamespace(const=lambda value: value)
    try:
        spec.loader.exec_module(module)
    finally:
        if stand_in:
            del sys.modules["micropython"]
    return module


def schema_module():
    return firmware_module("config")


def require_valid(config: dict) -> dict:
    """``config`` if every key and value passes the firmware's schema; else
    one clear error naming the first bad one."""
    module = schema_module()
    for key, value in config.items():
        message = module.check(key, value)
        if message is not None:
            raise KeidriveError(message)
    return config
