"""Whether a generated module fits a board beside the firmware.

The budget, measured (README, "DBC compiler"): the firmware with no vehicle
module takes 71.6 KB of a 128 KiB MicroPython heap (32-bit port, modules
loaded from .mpy), and 24 KiB must stay free for the trip log and the
frames in flight, which leaves 30 KiB of heap for the vehicle module. A
module loaded from .mpy takes 1.03-1.28 times its armv7m .mpy size in heap
(the project's and opendbc's modules), so the budget is stated as armv7m
.mpy bytes: 30 KiB / 1.3.
"""

import subprocess
import tempfile
from pathlib import Path

from ..errors import KeidriveError
from ..runtime import mpy_cross_command

HEAP_BUDGET = 30 * 1024
HEAP_PER_MPY_BYTE = 1.3
MPY_BUDGET = int(HEAP_BUDGET / HEAP_PER_MPY_BYTE)
MPY_ARCH = "armv7m"


def mpy_size(text: str) -> int | str:
    """The module's size as armv7m .mpy bytes, or why mpy-cross could not make it."""
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "vehicle.py"
        source.write_text(text, encoding="utf-8")
        target = source.with_suffix(".mpy")
        try:
            result = subprocess.run([mpy_cross_command(), f"-march={MPY_ARCH}", "-o", str(target), str(source)],
                                    capture_output=True, text=True, timeout=300)
        except KeidriveError as error:
            return str(error)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"cannot run mpy-cross ({error})"
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            return f"mpy-cross fails on it ({lines[-1] if lines else 'no message'})"
        return target.stat().st_size


def over_budget(text: str, name: str) -> str | None:
    """One line saying the module is too big for a board, or None when it fits."""
    size = mpy_size(text)
    if isinstance(size, int) and size <= MPY_BUDGET:
        return None
    what = f"{size} B as {MPY_ARCH} .mpy" if isinstance(size, int) else size
    return (f"{name}: {what}, over the {MPY_BUDGET} B a board holds beside the firmware "
            f"(128 KiB heap, 24 KiB kept free); compile fewer messages (--roles, --node, --messages)")
