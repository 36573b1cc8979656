"""The firmware's config schema, used on the host.

``firmware/keifw/config.py`` is the one definition (the firmware validates
its config at boot with it); the host loads that same module rather than
keeping a copy, so a value the host accepts is a value the firmware accepts.
"""

import importlib.util
from functools import cache

from .errors import KeidriveError
from .paths import firmware_dir


def firmware_module(name: str):
    """``keifw.<name>`` of the bundled firmware, imported under CPython (the
    package's compat module stands in for ``micropython`` there), for the
    firmware's own tables (alerts' profiles) rather than copies of them."""
    import sys

    tree = str(firmware_dir())
    if tree not in sys.path:
        sys.path.insert(0, tree)
    return importlib.import_module(f"keifw.{name}")


@cache
def schema_module():
    path = firmware_dir() / "keifw" / "config.py"
    spec = importlib.util.spec_from_file_location("keidrive_firmware_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_valid(config: dict) -> dict:
    """``config`` if every key and value passes the firmware's schema; else
    one clear error naming the first bad one."""
    module = schema_module()
    for key, value in config.items():
        message = module.check(key, value)
        if message is not None:
            raise KeidriveError(message)
    return config
