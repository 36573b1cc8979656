"""MicroPython's Cortex-M3 image in qemu-system-arm, its UART on a local TCP socket.

``Machine`` starts the emulator; ``Session`` speaks to the REPL on its UART
with mpremote's own transport (raw REPL, raw-paste, ``mount``) over
pyserial's ``socket://`` port, so the host reaches the emulated board the
way it reaches a real one.

Why TCP and not ``-serial pty``: measured here, a pty lost bytes under load
(a 100 kB transfer never completed, twice in a row) and moved about 9 kB/s
when it did; the TCP chardev moved the same 100 kB intact at 17-19 kB/s.
Either way the emulated UART takes one byte per emulator main-loop turn, so
the link carries roughly 700-800 records a second.

With ``-icount shift=0`` the emulator executes one instruction per
nanosecond of virtual time, so ``time.ticks_us()`` on the target counts
thousands of instructions, the same on every run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import KeidriveError

MACHINE = "mps2-an385"
BOOT_TIMEOUT_S = 20.0


class Machine:
    def __init__(self, image: str | os.PathLike, *, icount: bool = True):
        if shutil.which("qemu-system-arm") is None:
            raise KeidriveError("qemu-system-arm not found: sudo apt-get install qemu-system-arm")
        # A free port may be taken by another program before qemu binds it: try another.
        for attempt in range(3):
            self._log = tempfile.NamedTemporaryFile(prefix="keidrive-qemu-", suffix=".log", delete=False)  # noqa: SIM115  (closed by close())
            self.port = _free_port()
            command = ["qemu-system-arm", "-machine", MACHINE, "-nographic", "-monitor", "null", "-semihosting",
                       *(["-icount", "shift=0"] if icount else []),
                       "-serial", f"tcp:127.0.0.1:{self.port},server=on,wait=off", "-kernel", str(image)]
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)  # noqa: PLW1509  (prctl only)
            self.url = f"socket://127.0.0.1:{self.port}"
            try:
                self._wait_for_port()
                return
            except KeidriveError:
                if attempt == 2:
                    raise

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            # ours, not another program's on a port it took first: qemu must still run
            if self.process.poll() is not None:
                text = Path(self._log.name).read_text(errors="replace").strip().splitlines()
                self.close()
                raise KeidriveError(f"qemu-system-arm exited at start: {text[-1] if text else 'no output'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if self.process.poll() is None:
                    return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise KeidriveError("qemu-system-arm did not open its serial port within 20 s")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log.close()
        os.unlink(self._log.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _die_with_parent() -> None:
    """In the emulator's process before exec: a harness that kills its
    firmware process (this one's parent) must not leave an emulator running."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: close() still stops it
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Session:
    """The raw REPL on a machine's UART; ``mount`` a host folder as /remote first if given."""

    def __init__(self, machine: Machine, mount: str | os.PathLike | None = None):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        try:
            self.transport = SerialTransport(machine.url, baudrate=115200)
            self.transport.enter_raw_repl(soft_reset=False)
            if mount is not None:
                self.transport.mount_local(str(mount))
        except TransportError as error:
            raise KeidriveError(f"the qemu board's REPL did not answer on {machine.url}: {error}") from None
        self._pending = b""
        self.error_output = b""
        self.finished = False

    def start(self, script: str) -> None:
        """Run ``script`` without waiting for it (its output comes from ``lines``)."""
        self.transport.exec_raw_no_follow(script)

    def run(self, script: str, timeout: float = 60.0) -> bytes:
        """Run ``script`` to its end; its output, or KeidriveError with its traceback."""
        out, err = self.transport.exec_raw(script, timeout=timeout)
        if err:
            raise KeidriveError(f"on the qemu board: {err.decode(errors='replace').strip().splitlines()[-1]}")
        return out

    def write(self, data: bytes) -> None:
        self.transport.serial.write(data)

    def lines(self):
        """The running script's output, a line at a time, until it ends
        (then ``error_output`` holds what it wrote to stderr: a traceback)."""
        serial = self.transport.serial
        while not self.finished:
            chunk = serial.read(max(1, min(4096, serial.inWaiting())))
            data = self._pending + chunk
            end = data.find(b"\x04")
            if end >= 0:
                self.finished = True
                self.error_output = data[end + 1:]
                data = data[:end]
                while not self.error_output.endswith(b"\x04"):
                    more = serial.read(1)
                    if not more:
                        break
                    self.error_output += more
                self.error_output = self.error_output.rstrip(b"\x04>")
                *complete, last = data.split(b"\n") + [b""]
            else:
                *complete, last = data.split(b"\n")
            self._pending = last
            for line in complete:
                yield line.rstrip(b"\r")
