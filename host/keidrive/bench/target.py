"""The firmware on the Cortex-M3 (qemu MPS2-AN385, the firmware frozen in, 128 KiB heap by default).

Instruction counts come from the emulator's virtual clock under
``-icount shift=0`` (1 ns per instruction; on_target.py), so they are the
same on every run and machine. The window of records measured is a slice of
the simulated drive held in the board's RAM, so the link's speed does not
enter them; ``instr_per_frame_transport`` is what the framed reader adds.
``heap_free_min`` is the lowest free heap during a whole drive brought in
over the UART (that part takes minutes: the emulated UART moves about 800
records a second): ``gc.mem_free()`` right after a ``gc.collect()``, taken by
the link's reader (keifw/link.py) at every block it reads and once after the
trip line. After a collection, because MicroPython collects only when an
allocation finds no room: between collections mem_free() counts garbage as
used. So it is the most the firmware held live at a block boundary; the
paths allocate nothing inside a block (proven under heap_lock by the tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ..drive.harness import firmware_config
from ..errors import KeidriveError
from ..io import record

WINDOW_RECORDS = 1024  # records held in the board's RAM for the counts (24 KiB)
WINDOW_START_S = 600.0  # where in the drive the window starts (suburban phase: every message, ticks, status lines)

# Clock rates of the boards the counts are carried over to, and how.
BOARDS = {"esp32": 240e6, "rp2040": 125e6}
ASSUMPTIONS = (
    "boards run the Cortex-M3 instruction count of the board path at one instruction per clock cycle: "
    "no flash wait states or cache misses (ESP32 runs frozen code from cached flash), no Wi-Fi or other tasks, "
    "and the Xtensa (ESP32) and ARMv6-M (RP2040, no Thumb-2) builds are assumed to need the same instruction "
    "count, which favours the RP2040; so these are upper bounds on frames per second"
)


def _window(records, start_s: float, n: int):
    first = int(records["timestamp_us"].searchsorted(int(start_s * 1e6)))
    window = records[first:first + n]
    if len(window) < n:
        raise KeidriveError(f"the drive has fewer than {n} frames after {start_s:.0f} s")
    return window


def _on_target(target, cfg: dict, window) -> tuple[int, dict]:
    from ..target import link
    from ..target.qemu import Machine, Session

    code = (Path(__file__).with_name("on_target.py").read_text()
            .replace("CFG = {}", f"CFG = {cfg!r}", 1).replace("N = 0", f"N = {len(window)}", 1))
    with Machine(target.path) as machine:
        session = Session(machine)
        free = int(session.run("import gc\ngc.collect()\nprint(gc.mem_free())").strip())
        session.start(code)
        figures = None
        for line in session.lines():
            if line == b"ready":
                session.write(link.frame(window))
            elif line.startswith(b"figures "):
                figures = dict(json.loads(line[len(b"figures "):]))
        if figures is None:
            last = session.error_output.decode(errors="replace").strip().splitlines()[-1:]
            raise KeidriveError(f"the bench on the qemu board failed: {last[0] if last else 'no output'}")
    return free, figures


def _heap_free_min(cfg: dict, records, heap: int | None) -> int:
    with tempfile.TemporaryDirectory(prefix="keidrive-bench-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps(cfg))
        command = [sys.executable, "-m", "keidrive.target.bridge", "qemu", "--watch-heap", "--stdin",
                   "--config", str(config)] + (["--heap", str(heap)] if heap else [])
        done = subprocess.run(command, input=records.tobytes(), capture_output=True, timeout=3 * 3600, check=False)
    for line in done.stdout.splitlines():
        if b'"heap_free_min"' in line:
            return int(json.loads(line)["heap_free_min"])
    tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-1:]
    raise KeidriveError(f"the drive on the qemu board did not finish: {tail[0] if tail else 'no output'}")


def method(figures: dict) -> str:
    """How the figures were taken, for the text report."""
    return (f"Cortex-M3 instructions counted by qemu-system-arm -icount shift=0 on the MPS2-AN385 image with the "
            f"firmware frozen; counts over {WINDOW_RECORDS} records of the drive from {WINDOW_START_S:.0f} s held "
            f"in RAM (256 warm-up records first); heap_free_min over the whole drive through the UART link, "
            f"gc.mem_free() after a gc.collect() at every block read")


def target_figures(vehicle: str = "nbox-turbo", cycle: str = "wltc-jp", *, profile: str = "jp-expressway",
                   heap: int | None = None, whole_drive: bool = True) -> dict:
    from ..sim import load_cycle, load_vehicle, simulate
    from ..target import build
    from ..target.freeze import flash_bytes

    target = build("qemu", heap=heap)
    # now: other builds prune old application images from the cache during a long drive
    flash = flash_bytes(target)
    cfg = firmware_config(vehicle, profile)
    records = record.from_frames(simulate(load_vehicle(vehicle), load_cycle(cycle)).frames)
    free, counts = _on_target(target, cfg, _window(records, WINDOW_START_S, WINDOW_RECORDS))
    board = counts["instr_per_frame_board"]
    # every measure of on_target.py MEASURES, in its order
    figures = {name: value for name, value in counts.items() if name.startswith("instr_per_")}
    figures.update({
        "alloc_bytes_per_frame": counts["alloc_bytes_per_frame"],
        "heap_size": target.heap_size,
        "heap_free_after_boot": free,
        "heap_free_min": _heap_free_min(cfg, records, heap) if whole_drive else None,
        "flash_bytes": flash,
    })
    for name, hz in BOARDS.items():
        figures[f"{name}_frames_per_s_estimate"] = round(hz / board) if board > 0 else None
    from . import mcp2515  # the MCP2515 driver's own cost, on the image without the application

    mcp = mcp2515.measure(target.base or target.path)
    figures["instr_per_frame_mcp2515"] = mcp["instr_per_frame_mcp2515"]
    for name in BOARDS:
        figures[f"{name}_mcp2515_drain_frames_per_s_estimate"] = mcp[f"max_frames_per_s_{name}"]
    figures["estimate_assumptions"] = ASSUMPTIONS + "; MCP2515 drain: " + "; ".join(mcp2515.ASSUMPTIONS)
    return figures
