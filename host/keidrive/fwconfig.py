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


def require_profile(profile: str) -> str:
    """``profile`` if it is one of the firmware's speed profiles; else one
    line naming it, the closest profile and the others."""
    from .errors import did_you_mean

    names = schema_module().SCHEMA["profile"][2]
    if profile not in names:
        raise KeidriveError(
            f"{profile}: no such speed profile{did_you_mean(profile, names)} (valid profiles: {', '.join(names)})",
            option="profile",
        )
    return profile


def speed_limits(config: dict) -> dict:
    """The speeds the firmware's warnings apply under ``config`` (its own
    logic sets them up): ``limit_kmh``, ``advisory_kmh`` (the kei advisory
    on an interstate, below its limit) and ``minimum_kmh``, None where none."""
    alerts = firmware_module("alerts")
    applied = alerts.Alerts(dict(schema_module().DEFAULTS, **config), False, False)
    advisory = alerts.KEI_ADVISORY_CKMH if applied.interstate and alerts.KEI_ADVISORY_CKMH < applied.limit else None
    return {
        "limit_kmh": applied.limit / 100,
        "advisory_kmh": advisory / 100 if advisory else None,
        "minimum_kmh": applied.minimum / 100 if applied.minimum else None,
    }
