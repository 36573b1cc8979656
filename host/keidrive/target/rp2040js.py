"""An emulated Raspberry Pi Pico: the npm package rp2040js (pinned in
js/package-lock.json, used unmodified) under Node.js, driven by js/runner.js.

``Pico`` starts the runner on a UF2 image with the RP2040's boot ROM and,
optionally, files written into its flash (a LittleFS image). Its console is
the USB CDC device MicroPython opens: ``write`` sends to it, and without a
device handler ``read`` returns what it printed. With a ``handler`` the
runner also asks the host for the devices wired to the chip (the MCP2515 on
SPI0: see pico.py) over a pipe pair, and every message carries the emulated
time in nanoseconds and the cycles the core has executed; ``serve`` answers
them until the runner stops.

The packages are installed with ``npm ci`` into the user's cache folder, once
per lock file, the first time a Pico is started.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from pathlib import Path

from ..errors import KeidriveError
from . import source

PACKAGE = Path(__file__).resolve().with_name("js")
RUNNER = PACKAGE / "runner.js"
BOOTROM_VAR = "KEIDRIVE_RP2040_BOOTROM"
BOOTROM_SIZE = 16384
NODE_MAJOR = 18  # rp2040js's engines field
CLOCK_HZ = 125_000_000  # the clock rp2040js runs the core at

_HEADER = struct.Struct("<BBHIdd")  # type, 0, payload length, the core's PC, emulated ns, cycles executed
_REPLY = struct.Struct("<BBHHxxd")  # INT level, flags, response length, console length, next event ns
STOP = 1


def node_command() -> str:
    """``node`` (18 or newer) on PATH, or one line saying what to install."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        raise KeidriveError("the emulated Pico needs Node.js 18+ and npm: sudo apt-get install nodejs npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < NODE_MAJOR:
        raise KeidriveError(f"the emulated Pico needs Node.js {NODE_MAJOR} or newer; {node} is {version or 'unknown'}")
    return node


def node_modules() -> Path:
    """rp2040js and uf2 as the lock file pins them, installed once into the cache."""
    from .builder import locked

    lock = (PACKAGE / "package-lock.json").read_bytes()
    key = hashlib.sha256((PACKAGE / "package.json").read_bytes() + lock).hexdigest()[:16]
    folder = source.cache_root() / "npm" / f"rp2040-runner-{key}"
    done = folder / ".keidrive-complete"
    if done.is_file():
        return folder / "node_modules"
    node_command()
    with locked(folder.with_suffix(".lock")):
        if not done.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(PACKAGE / name, folder / name)
            result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                                    cwd=folder, capture_output=True, text=True, timeout=600, check=False)
            if result.returncode != 0:
                last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
                raise KeidriveError(f"npm ci in {folder} failed: {last[0]}")
            done.write_text("rp2040js and uf2 from package-lock.json\n")
    return folder / "node_modules"


def bootrom(given: str | os.PathLike | None = None) -> Path:
    """The RP2040 B1 boot ROM the emulator maps at address 0 (--bootrom or $KEIDRIVE_RP2040_BOOTROM)."""
    chosen = given or os.environ.get(BOOTROM_VAR)
    if not chosen:
        raise KeidriveError(
            f"no RP2040 boot ROM: set {BOOTROM_VAR} to the B1 boot ROM image (16384 bytes, built from "
            "github.com/raspberrypi/pico-bootrom, tag b1)"
        )
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise KeidriveError(f"{BOOTROM_VAR}={chosen}: no such file")
    if path.stat().st_size != BOOTROM_SIZE:
        raise KeidriveError(f"{chosen}: an RP2040 boot ROM is {BOOTROM_SIZE} bytes, not {path.stat().st_size}")
    return path


class Message:
    """One message from the runner: its type ('O' console output, 'X' an SPI
    byte needs the chip's answer, 'E' chip select rose, 'T' a requested
    callback), when it was sent and what it carries."""

    __slots__ = ("cycles", "kind", "nanos", "payload", "pc")

    def __init__(self, kind: str, nanos: float, cycles: float, payload: bytes, pc: int = 0):
        self.kind = kind
        self.nanos = nanos
        self.cycles = cycles
        self.payload = payload
        self.pc = pc


class Pico:
    """The runner process. ``flash``: [(file, offset)] written into flash
    before boot; ``flash_out``: (file, offset, length) written when it stops;
    ``device``: answer the chip's devices over ``serve`` (the console then
    comes in 'O' messages too)."""

    def __init__(self, uf2: str | os.PathLike, *, flash=(), flash_out=None, device: bool = False,
                 cs_pin: int = 17, int_pin: int = 20, rom: str | os.PathLike | None = None):
        command = [node_command(), str(RUNNER), "--bootrom", str(bootrom(rom)), "--uf2", str(uf2)]
        for path, offset in flash:
            command += ["--flash", f"{path}@{offset}"]
        if flash_out is not None:
            path, offset, length = flash_out
            command += ["--flash-out", f"{path}@{offset}:{length}"]
        env = dict(os.environ, NODE_PATH=str(node_modules()))
        pass_fds = ()
        self._from = self._to = None
        if device:
            from_runner, runner_out = os.pipe()
            runner_in, to_runner = os.pipe()
            command += ["--device", f"{runner_in},{runner_out}", "--cs", str(cs_pin), "--int", str(int_pin)]
            pass_fds = (runner_in, runner_out)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, pass_fds=pass_fds)
        if device:
            os.close(runner_in)
            os.close(runner_out)
            self._from = open(from_runner, "rb", buffering=1 << 16)  # noqa: SIM115  (closed in close())
            self._to = to_runner

    # -- the console ---------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Bytes typed into the console (the USB CDC device)."""
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def read(self, n: int = 4096) -> bytes:
        """What the console printed (without a device channel), b"" once the runner has ended."""
        return self.process.stdout.read1(n)

    # -- the device channel ---------------------------------------------------
    def message(self) -> Message | None:
        """The runner's next message, None once it has exited."""
        header = self._from.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        kind, _, length, pc, nanos, cycles = _HEADER.unpack(header)
        return Message(chr(kind), nanos, cycles, self._from.read(length) if length else b"", pc)

    def reply(self, int_level: int, next_nanos: float | None, response: bytes = b"", console: bytes = b"",
              stop: bool = False) -> None:
        """The answer to an 'X', 'E' or 'T' message: INT's level, when to call
        back (None: no callback), the SPI bytes, console input, whether to stop."""
        head = _REPLY.pack(int_level, STOP if stop else 0, len(response), len(console),
                           -1.0 if next_nanos is None else float(next_nanos))
        os.write(self._to, head + response + console)

    # -- the process --------------------------------------------------------------
    def failure(self) -> str:
        """The runner's last line on stderr (why it exited)."""
        try:
            text = self.process.stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            text = ""
        return text.splitlines()[-1] if text else f"exit code {self.process.poll()}"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr, self._from):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if self._to is not None:
            os.close(self._to)
            self._to = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
