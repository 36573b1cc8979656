"""The firmware on the emulated Raspberry Pi Pico (rp2040js, the rp2040
application image), frames through its MCP2515 on SPI0: the path a Pico
runs (the INT pin's interrupt, SPI reads into the driver's ring, the ring
into the scanner in blocks, the 10 Hz tick, status lines, trip saves).

Two phases in one boot (on_pico.py runs them):

* the drive: the whole cycle's frames at their own times. ``heap_free_min``
  is the lowest ``gc.mem_free()`` after any pass of the board loop;
  ``alloc_bytes_per_frame`` what ``gc.mem_alloc()`` grew by between the
  first and the last pass that had frames, per frame.
* a saturated bus for SATURATE_S seconds: the drive's frames from
  SATURATE_FROM_S at their own times and, in every idle bit time between
  them, an ENGINE_1 frame (0x130, which the chip's filters pass: the
  firmware reads each one; its arrival-rate check then marks the message
  flooded instead of decoding it). ``cycles_per_frame_mcp2515`` is the
  cycles the core executed over that minute (ticks and status lines
  included; the cycles it spent waiting for an interrupt are not counted)
  divided by the frames the firmware received.

``cycles_per_frame_machine_can_port``: what keifw.canport.MachineCANPort's
read adds per frame over a stand-in controller (the RP2040 has no
machine.CAN; a board's controller adds its own recv), timed on the core's
clock before the drive.

rp2040js counts Cortex-M0+ cycles per instruction and memory access; it
models no XIP flash-cache misses (the firmware runs from flash on a Pico),
so a Pico may take more.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from ..drive.harness import firmware_config
from ..errors import KeidriveError
from ..io import record

SATURATE_S = 60
SATURATE_FROM_S = 600.0  # the suburban phase: every message, ticks and status lines at their drive rate
SPI_REQUESTED_HZ = 10_000_000  # the MCP2515's fastest SPI clock; the firmware asks for it
FLOOD = (0x130, False, bytes((0x130 + k) & 0xFF for k in range(8)))
SETTLE_NS = 200_000_000  # after the saturated bus: the ring is empty long before
TIMING_NOTE = ("rp2040js counts Cortex-M0+ cycles per instruction and memory access and models no XIP "
               "flash-cache misses: a Pico running from flash may take more")


def _window(records, start_s: float, seconds: float):
    stamps = records["timestamp_us"]
    first = int(stamps.searchsorted(int(start_s * 1e6)))
    last = int(stamps.searchsorted(int((start_s + seconds) * 1e6)))
    if last <= first:
        raise KeidriveError(f"the drive has no frames between {start_s:.0f} and {start_s + seconds:.0f} s")
    return records[first:last]


def rp2040_figures(vehicle: str = "nbox-turbo", cycle: str = "wltc-jp", *, profile: str = "jp-expressway",
                   saturate_s: int = SATURATE_S, saturate_from_s: float = SATURATE_FROM_S) -> dict:
    """The figures (docs/targets.md); a shorter saturated bus or another part of the drive for tests."""
    from ..sim import load_cycle, load_vehicle, simulate
    from ..target import build, pico

    target = build("rp2040")
    cfg = pico.board_config({**firmware_config(vehicle, profile), "mcp2515_baudrate": SPI_REQUESTED_HZ})
    records = record.from_frames(simulate(load_vehicle(vehicle), load_cycle(cycle)).frames)
    # a cycle shorter than the start and the window: its last saturate_s seconds
    # (the whole drive runs at its own pace first, the dearest part to emulate)
    saturate_from_s = max(0.0, min(saturate_from_s, int(records["timestamp_us"][-1]) / 1e6 - saturate_s))
    saturated = _window(records, saturate_from_s, saturate_s)
    script = Path(__file__).with_name("on_pico.py").read_text().replace("CFG = {}", f"CFG = {cfg!r}", 1)
    mcp = pico.model()
    chip = pico.chip_for(mcp, cfg)

    class Bench(pico.ScriptSession):
        """The script's phases: frames when it is ready, the saturated bus, Ctrl-C."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.figures: dict = {}
            self.saturated_from = None  # (ns, cycles) when the saturated bus starts
            self.saturated_cycles = None
            self.lost_before = 0

        def _bus(self, frames, flood=None):
            self.bus = pico.Bus(chip, cfg["can_bitrate"], io.BytesIO(frames.tobytes()).read, mcp.frame_bits, flood)

        def line(self, line: str) -> None:
            if not line.startswith('{"bench":'):
                return super().line(line)
            event = json.loads(line)
            self.figures.update({k: v for k, v in event.items() if k != "bench"})
            if event["bench"] == "ready":
                self._bus(records)
                self.bus.start(self.nanos + pico.START_NS)
            elif event["bench"] == "saturate":
                self._bus(saturated, FLOOD)
                self.bus.start(self.nanos + pico.START_NS, saturate_s * 1e9)
                self.saturated_from = (self.bus.start_ns, None)
                self.lost_before = chip.lost
            elif event["bench"] == "done":
                self.done = True

        def wake(self):
            due = super().wake()
            if self.saturated_from is None:
                return due
            start_ns, start_cycles = self.saturated_from
            if start_cycles is None and self.nanos >= start_ns:
                self.saturated_from = (start_ns, self.cycles)
            if due is None and self.saturated_cycles is None and self.nanos > self.bus.last_ns + SETTLE_NS:
                self.saturated_cycles = self.cycles - self.saturated_from[1]
                self.figures["bus_frames"] = self.bus.frames
                self.figures["frames_lost"] = chip.lost - self.lost_before
                self.type(b"\x03")  # Ctrl-C: the script prints its last figures
            return due if due is not None else self.nanos + pico.POLL_NS

    with tempfile.TemporaryDirectory(prefix="keidrive-bench-pico-") as tmp, \
            pico.boot(target, cfg, None, Path(tmp)) as emulated:
        bench = Bench(emulated, chip, None, script=script, out=io.StringIO(), err=io.StringIO())
        if bench.run() != 0:
            raise KeidriveError(f"the bench on the emulated Pico failed: {bench.failed}")
    got = bench.figures
    cycles = bench.saturated_cycles / got["frames"] if got["frames"] else None
    image = target.image
    return {
        "cycles_per_frame_mcp2515": round(cycles) if cycles else None,
        "frames_per_s_at_125mhz": round(125e6 / cycles) if cycles else None,
        "saturated_bus_frames_per_s": round(got["bus_frames"] / saturate_s),
        "saturated_frames_received": got["frames"],
        "saturated_overruns": got["overruns"],
        "saturated_frames_lost": got["frames_lost"],
        "saturated_s": saturate_s,
        "saturated_from_s": saturate_from_s,
        "cycles_per_frame_machine_can_port": got["machine_can_cycles"],
        "spi_requested_hz": SPI_REQUESTED_HZ,
        "spi": got["spi"],
        "alloc_bytes_per_frame": round(got["alloc_bytes"] / got["alloc_frames"], 3) if got["alloc_frames"] else None,
        "heap_size": target.heap_size,
        "heap_free_fresh": got["heap_free_fresh"],
        "heap_free_after_boot": got["heap_free_after_boot"],
        "heap_free_min": got["heap_free_min"],
        "drive_frames": got["drive_frames"],
        "drive_overruns": got["drive_overruns"],
        "flash_bytes": image["flash_bytes"],
        "flash_bytes_left": image["flash_bytes_left"],
        "uf2_bytes": image["uf2_bytes"],
        "timing_note": TIMING_NOTE,
    }
