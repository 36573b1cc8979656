"""The Debian toolchain a target build needs, checked before anything runs.

Each requirement is probed the way the build will use it (a command on PATH,
or a file the compiler needs), and named by the Debian package that provides
it, so a missing piece is one line a user can paste into ``apt-get install``.
"""

from __future__ import annotations

import glob
import shutil

from ..errors import KeidriveError

# (Debian package, command on PATH or None, file patterns one of which must exist)
_PROBES = {
    "make": ("make", None),
    "gcc": ("gcc", None),
    "gcc-arm-none-eabi": ("arm-none-eabi-gcc", None),
    "libnewlib-arm-none-eabi": (None, ("/usr/lib/arm-none-eabi/include/newlib.h",)),
    "qemu-system-arm": ("qemu-system-arm", None),
    "cmake": ("cmake", None),
    # the rp2 port's C++ parts (pico-sdk) link against arm-none-eabi's libstdc++
    "libstdc++-arm-none-eabi-newlib": (None, ("/usr/lib/arm-none-eabi/include/c++/*/cstdlib",)),
    # the 32-bit C library and libgcc that gcc -m32 links against
    "gcc-multilib": (None, ("/usr/lib/gcc/*/*/32/libgcc.a", "/usr/include/*/gnu/stubs-32.h")),
}

NEEDS = {
    "qemu": ("make", "gcc", "gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"),
    "unix32": ("make", "gcc", "gcc-multilib"),
    "rp2040": ("make", "gcc", "cmake", "gcc-arm-none-eabi", "libnewlib-arm-none-eabi",
               "libstdc++-arm-none-eabi-newlib"),
}


def missing(target: str) -> list[str]:
    """The Debian packages ``target`` needs that this machine lacks."""
    absent = []
    for package in NEEDS[target]:
        command, files = _PROBES[package]
        lacks_command = command is not None and shutil.which(command) is None
        lacks_files = files is not None and not any(glob.glob(pattern) for pattern in files)
        if lacks_command or lacks_files:
            absent.append(package)
    return absent


def check(target: str) -> None:
    absent = missing(target)
    if absent:
        raise KeidriveError(
            f"building the {target} target needs Debian packages that are missing: "
            f"sudo apt-get install {' '.join(absent)}"
        )
