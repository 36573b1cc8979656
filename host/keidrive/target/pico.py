"""The firmware on an emulated Raspberry Pi Pico, behind main.py's own command line.

    python -m keidrive.target.pico [--tree DIR] --stdin|--socket PATH --config PATH [--data DIR]
        [--clock virtual]

The harness starts this wherever it would start ``micropython main.py``. It
boots the rp2040 application image (the firmware and main.py frozen in:
main.py runs at boot, as on a Pico) under rp2040js, with a LittleFS image
holding ``/config.json`` (the Pico's MCP2515 wiring added: SPI0, chip select
GP17, INT GP20) and ``--data``'s trip store in ``/data``. The records it
reads go onto the CAN bus of the MCP2515 on SPI0: the project's register
model (board/vboard/kd_mcp2515.py) answers the chip's SPI transactions and
drives its INT pin, and each frame reaches the chip at its own timestamp,
counted from the moment the firmware has put the chip in listen-only mode,
as a bus at the configured bit rate carries it (frames that would overlap
queue behind each other). The firmware runs on the Pico's own clock.

Telemetry lines go to stdout, other console text to stderr. When the drive
is over (an end-of-drive record, or the end of the input) and a status line
has been printed a while after the last frame, the runner types Ctrl-C on
the console: main.py stops the firmware, which prints its trip line; once
the REPL is back, ``/data`` (the trip store as the last periodic save left
it) goes back into ``--data``.
Nothing is transmitted (listen-only), and remote and error frames are not
put on the bus: the model receives data frames.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

from ..errors import KeidriveError
from ..io import record
from . import rp2040js
from .bridge import open_source, main_arguments

VBOARD = Path(__file__).resolve().parents[1] / "board" / "vboard"
START_NS = 50_000_000  # the first frame after the chip is receiving (lets the firmware's loop start)
SETTLE_NS = 2_000_000_000  # after the last frame: signals time out, a status line covers everything
POLL_NS = 10_000_000  # how often the runner looks at the console while it waits for it
ANSWER_NS = 10_000_000_000  # the console must answer (the trip after Ctrl-C) within this much emulated time
READ_BYTES = 4096 * record.SIZE
TRIM = 50_000  # delivered frames kept before the schedule is cut
BANNER = "Type \"help()\" for more information."  # the REPL is back: main.py has ended
BOOT_NS = 20_000_000_000  # a boot reaches its REPL or main.py long before this much emulated time


def model():
    """The MCP2515 register model the virtual boards carry (a module file, not a package)."""
    spec = importlib.util.spec_from_file_location("kd_mcp2515", VBOARD / "kd_mcp2515.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Bus:
    """Records onto the chip's schedule: each frame's last bit at its
    timestamp after ``start_ns`` or, on a busy bus, right after the frame
    before. ``flood`` (id, extended, data) fills every idle bit time up to
    ``flood_until_ns``: a saturated bus."""

    def __init__(self, chip, bitrate: int, read, frame_bits, flood=None):
        self.chip = chip
        self.bit_ns = 1_000_000_000 // bitrate
        self.read = read
        self.frame_bits = frame_bits
        self.flood = flood
        self.flood_until_ns = 0.0
        self.pending = b""
        self.ended = False
        self.start_ns: float | None = None
        self.first_us: int | None = None
        self.last_ns = 0.0
        self.frames = 0

    def start(self, at_ns: float, flood_for_ns: float = 0.0) -> None:
        self.start_ns = at_ns
        self.last_ns = at_ns
        self.flood_until_ns = at_ns + flood_for_ns

    def due(self) -> float | None:
        """When the next frame reaches the chip (None: none is known yet, or the drive is over)."""
        if self.start_ns is None:
            return None
        chip = self.chip
        while not self.ended and chip.next >= len(chip.schedule):
            self._take(self.read(READ_BYTES))
        if self.ended and chip.next >= len(chip.schedule):
            self._fill(self.flood_until_ns)
        if chip.next >= TRIM:
            del chip.schedule[:chip.next]
            chip.next = 0
        return chip.schedule[chip.next][0] if chip.next < len(chip.schedule) else None

    def _put(self, at_ns: float, can_id: int, extended: bool, data: bytes) -> None:
        self.last_ns = max(at_ns, self.last_ns) + self.frame_bits(extended, len(data)) * self.bit_ns
        self.chip.schedule.append((self.last_ns, can_id, extended, data))
        self.frames += 1

    def _fill(self, until_ns: float) -> None:
        """Flood frames in the idle bit times before ``until_ns``."""
        if self.flood is None:
            return
        can_id, extended, data = self.flood
        bits = self.frame_bits(extended, len(data)) * self.bit_ns
        while self.last_ns + bits <= until_ns and len(self.chip.schedule) - self.chip.next < TRIM:
            self._put(self.last_ns, can_id, extended, data)

    def _take(self, data: bytes) -> None:
        if not data:
            self.ended = True
            return
        data = self.pending + data
        whole = len(data) - len(data) % record.SIZE
        self.pending = data[whole:]
        for offset in range(0, whole, record.SIZE):
            stamp, can_id, flags, dlc, _, payload = record.RECORD.unpack_from(data, offset)
            if flags & record.FLAG_CONTROL:
                if can_id == record.CONTROL_END_OF_DRIVE:
                    self.ended = True
                    return
                continue
            if flags & (record.FLAG_REMOTE | record.FLAG_ERROR):
                continue
            if self.first_us is None:
                self.first_us = stamp
            at = self.start_ns + (stamp - self.first_us) * 1000
            self._fill(at)
            self._put(at, can_id, bool(flags & record.FLAG_EXTENDED), payload[:min(dlc, 8)])


class Session:
    """Serves a Pico's device channel: the MCP2515's SPI and INT, the frames
    due, the console. Subclasses decide what the console is for (``line``,
    ``output``) and when to be called back (``wake``)."""

    def __init__(self, pico: rp2040js.Pico, chip, bus: Bus | None, out=sys.stdout, err=sys.stderr):
        self.pico = pico
        self.chip = chip
        self.bus = bus
        self.out = out
        self.err = err
        self.nanos = 0.0
        self.cycles = 0.0
        chip.clock_ns = lambda: self.nanos
        self.text = b""
        self.console_tail: list[str] = []
        self.to_console = b""
        self.done = False
        self.failed: str | None = None
        self.deadline_ns: float | None = None
        self.scratch = bytearray(32)

    # -- the chip -------------------------------------------------------------
    def _spi(self, message) -> bytes:
        chip = self.chip
        chip.int_level()  # the chip's time is now: frames due arrive
        if message.kind == "X":
            rx = self.scratch
            chip.readout(message.payload, rx)
            return bytes(rx[len(message.payload) - 1:])
        if message.kind == "E":
            chip.execute(message.payload)
            if chip.opmod() in (0, 3):
                self.receiving()
        return b""

    def receiving(self) -> None:
        """The firmware has the chip in normal or listen-only mode."""

    # -- the console ----------------------------------------------------------
    def type(self, data: bytes, answer_within_ns: float = ANSWER_NS) -> None:
        """Console input, and how long the Pico has to answer it (``expect``)."""
        self.to_console += data
        self.deadline_ns = self.nanos + answer_within_ns

    def output(self, data: bytes) -> None:
        """Console bytes as they come: split into lines for ``line``."""
        self.text += data
        *lines, self.text = self.text.split(b"\n")
        for raw in lines:
            self.line(raw.rstrip(b"\r").decode("utf-8", "replace"))

    def line(self, line: str) -> None:
        """A console line: telemetry to ``out``, the rest to ``err``."""
        if line.startswith("{"):
            self.out.write(line + "\n")
            self.out.flush()
        elif line.strip():
            self.err.write(line + "\n")
            self.console_tail = (self.console_tail + [line])[-20:]
            if line.startswith("Traceback") and self.failed is None:
                self.failed = "the firmware raised an exception on the Pico"

    def wake(self) -> float | None:
        """When to be called back: the next frame (subclasses add their own)."""
        return self.bus.due() if self.bus is not None else None

    def run(self) -> int:
        """Serve until ``done`` (or a failure); 0 when done."""
        pico = self.pico
        while True:
            message = pico.message()
            if message is None:
                self.failed = self.failed or f"the emulator stopped: {pico.failure()}"
                break
            self.nanos = message.nanos
            self.cycles = message.cycles
            if message.kind == "O":
                self.output(message.payload)
                response = b""
            else:
                response = self._spi(message)
            if self.deadline_ns is not None and self.nanos > self.deadline_ns and not self.done:
                self.failed = self.failed or "the Pico's console did not answer within 10 s"
            stop = self.done or self.failed is not None
            wake = None if stop else self.wake()
            if self.deadline_ns is not None and not stop:
                wake = min(wake, self.nanos + POLL_NS) if wake is not None else self.nanos + POLL_NS
            console, self.to_console = self.to_console, b""
            pico.reply(self.chip.int_level_raw(), wake, response, console, stop=stop)
            if stop:
                break
        if self.failed:
            tail = self.console_tail[-1] if self.console_tail else ""
            self.err.write(f"keidrive: error: {self.failed}" + (f" (its console: {tail})" if tail else "") + "\n")
            return 1
        return 0


class DriveSession(Session):
    """A drive through main.py: frames once the chip receives; at the end
    Ctrl-C, the trip line, the REPL's banner."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.status_ns = -1.0
        self.interrupted = False
        self.trip = False

    def receiving(self) -> None:
        if self.bus.start_ns is None:
            self.bus.start(self.nanos + START_NS)

    def line(self, line: str) -> None:
        super().line(line)
        if line.startswith('{"type":"status"'):
            self.status_ns = self.nanos
        elif line.startswith('{"type":"trip"'):
            self.trip = True
        elif line == BANNER and self.interrupted:
            self.done = self.trip  # main.py has ended
            if not self.trip:
                self.failed = "main.py ended without a trip line"

    def wake(self) -> float | None:
        due = super().wake()
        bus = self.bus
        if due is not None or not bus.ended or bus.start_ns is None:
            return due
        if not self.interrupted and self.status_ns > bus.last_ns + SETTLE_NS:
            # a status line has just gone out: the next tick is 100 ms away, so the
            # interrupt finds the firmware between passes of its loop
            self.interrupted = True
            self.type(b"\x03")  # Ctrl-C: main.py prints the trip
        return self.nanos + POLL_NS


class ScriptSession(Session):
    """Runs ``script`` on the Pico through the raw REPL, as mpremote does:
    Ctrl-C (every INTERRUPT_NS until the REPL's prompt shows: a boot may still
    be mounting its file system) stops main.py; in the raw REPL a soft reset
    gives a fresh interpreter (main.py does not run again there); then the
    script. Its output lines go to ``line``; ``done`` when it ends."""

    INTERRUPT_NS = 500_000_000

    RAW = b"raw REPL; CTRL-B to exit\r\n>"

    def __init__(self, *args, script: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline_ns = BOOT_NS  # the REPL (or main.py's chip init) must come by then
        # (what the console must have printed, what to type then)
        self.steps = [(b">>> ", b"\x01"), (self.RAW, b"\x04"), (b"soft reboot\r\n" + self.RAW, script.encode() + b"\x04"),
                      (b"OK", b"")]
        self.seen = b""
        self.interrupt_at = 0.0
        self.running = False
        self.errors = b""

    def wake(self) -> float | None:
        due = super().wake()
        if len(self.steps) == 4 and self.nanos >= self.interrupt_at:  # no prompt yet
            self.to_console += b"\r\x03\x03"
            self.interrupt_at = self.nanos + self.INTERRUPT_NS
        return due

    def output(self, data: bytes) -> None:
        if self.running:
            end = data.find(b"\x04")
            if end < 0:
                super().output(data)
                return
            super().output(data[:end] + b"\n")
            self.running = False
            self.errors = data[end + 1:]
            self.seen = b""
            data = b""
        if self.errors is not None and not self.steps and not self.running:
            self.errors += data
            if self.errors.endswith(b"\x04>"):
                text = self.errors[:-2].rstrip(b"\x04").decode(errors="replace").strip()
                if text:
                    self.failed = f"the script on the Pico failed: {text.splitlines()[-1]}"
                    self.console_tail += text.splitlines()[-5:]
                self.done = True
            return
        self.seen += data
        while self.steps and self.steps[0][0] in self.seen:
            wanted, send = self.steps.pop(0)
            self.seen = self.seen[self.seen.index(wanted) + len(wanted):]
            if send:
                self.type(send)
            if not self.steps:  # "OK": the script runs
                self.running = True
                self.deadline_ns = None
                rest, self.seen = self.seen, b""
                self.output(rest)
                return


def run_script(target, script: str, cfg: dict | None = None) -> str:
    """What ``script`` prints, run through the raw REPL on a Pico booting
    ``target``'s application image (with ``cfg``, or the default drive's, as
    /config.json); one clear error if it raises."""
    import io

    cfg = board_config(cfg or {})
    mcp = model()
    chip = chip_for(mcp, cfg)
    out = io.StringIO()
    err = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="keidrive-pico-") as tmp, boot(target, cfg, None, Path(tmp)) as pico:
        session = ScriptSession(pico, chip, None, script=script, out=out, err=err)
        if session.run() != 0:
            raise KeidriveError(err.getvalue().strip().splitlines()[-1])
    return out.getvalue() + err.getvalue()


def board_config(cfg: dict) -> dict:
    """The config with the Pico's MCP2515 wiring (keys the config sets win) and listen-only."""
    from ..board.boards import board_kind
    from ..fwconfig import schema_module

    return {**schema_module().DEFAULTS, **board_kind("rp2040").defaults(), **cfg, "can_port": "mcp2515",
            "transmit": False}


def boot(target, cfg: dict, data: Path | None, workdir: Path) -> rp2040js.Pico:
    """The application image with a LittleFS holding the config and ``data``'s files in /data."""
    from .littlefs import image_with

    image = target.image
    files = {"/config.json": json.dumps(cfg).encode(), "/data": None}
    if data is not None and data.is_dir():
        files.update({f"/data/{p.name}": p.read_bytes() for p in data.iterdir() if p.is_file()})
    flash_in = workdir / "littlefs.img"
    image_with(flash_in, image["storage_bytes"], files)
    return rp2040js.Pico(target.path, flash=[(flash_in, image["storage_offset"])],
                         flash_out=(workdir / "littlefs-after.img", image["storage_offset"], image["storage_bytes"]),
                         device=True, cs_pin=cfg["pin_cs"], int_pin=cfg["pin_int"])


def chip_for(mcp, cfg: dict):
    return mcp.Chip(osc_hz=cfg["mcp2515_osc_mhz"] * 1_000_000, bitrate=cfg["can_bitrate"],
                    spi_hz=cfg["mcp2515_baudrate"])


def _parse(argv):
    p = argparse.ArgumentParser(prog="keidrive.target.pico")
    main_arguments(p)
    return p.parse_args(argv)


def serve(args) -> int:
    from .builder import build
    from .littlefs import read_image

    if args.clock != "virtual":
        raise KeidriveError("the rp2040 runtime runs on the emulated Pico's clock, frames at their own "
                            "timestamps (no --realtime)")
    cfg = board_config(json.loads(Path(args.config).read_text()))
    if cfg.get("obd"):
        raise KeidriveError("the rp2040 runtime is listen-only: OBD-II polling transmits (use micropython or unix32)")
    read = open_source(args)  # before the Pico boots: the harness waits only so long for the firmware
    target = build("rp2040", app=args.tree)
    data = Path(args.data) if args.data else None
    mcp = model()
    chip = chip_for(mcp, cfg)
    with tempfile.TemporaryDirectory(prefix="keidrive-pico-") as tmp:
        workdir = Path(tmp)
        with boot(target, cfg, data, workdir) as pico:
            code = DriveSession(pico, chip, Bus(chip, cfg["can_bitrate"], read, mcp.frame_bits)).run()
            if code == 0:
                pico.process.wait(timeout=60)  # it writes the file system out as it stops
        after = workdir / "littlefs-after.img"
        if code == 0 and data is not None and after.is_file():
            read_image(after, workdir / "after")
            data.mkdir(parents=True, exist_ok=True)
            for path in (workdir / "after" / "data").iterdir():
                (data / path.name).write_bytes(path.read_bytes())
    return code


def main(argv=None) -> int:
    from . import bridge

    return bridge.main(argv, _parse, serve)


if __name__ == "__main__":
    sys.exit(main())
