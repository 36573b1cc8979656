"""A virtual dev board on a pseudo-terminal, for tests and demos.

One process owns the pty master and plays the USB-serial side of a board;
behind it the MicroPython unix port runs ``vboard/kd_agent.py``, the board's
console (friendly REPL, raw REPL, raw-paste mode, soft reset) written in
Python, with a folder mounted as its file system and ``vboard/kd_machine.py``
as its ``machine`` module (CAN on the keidrive virtual bus).

This process:

* copies what a client (mpremote, keidrive, a terminal) writes into the
  engine's stdin, except Ctrl-C, which becomes SIGINT: a KeyboardInterrupt
  in the running program, as the UART interrupt raises it on a board;
* copies the engine's output to the pty; with nobody reading it waits up to
  a second, then drops the backlog (a UART with no host on the other end);
* restarts the engine when it ends with a reset code (soft reset from the
  friendly or raw REPL, machine.reset()); the pty stays, as a USB-UART bridge
  does across a reset of the chip.

Architecture honesty: the engine is the unix port of this machine (x64 here)
and executes that architecture's native code only. The board shows the
identity of the family it stands in for (sys.platform, os.uname().machine
naming the chip and saying it is a keidrive virtual board) but reports the
engine's real ``sys.implementation._mpy``; ``keidrive flash`` therefore
compiles for the engine's architecture, and says so.
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import signal
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path

from ..errors import KeidriveError
from ..runtime import micropython_command
from .boards import VIRTUAL_MARK, board_kind

AGENT_DIR = Path(__file__).resolve().parent / "vboard"
AGENT = AGENT_DIR / "kd_agent.py"

EXIT_SOFT_FRIENDLY = 80
EXIT_SOFT_RAW = 81
EXIT_HARD = 82

STALL_DROP_S = 1.0


def _sigint_caught(pid: int) -> bool:
    """Has the engine installed its SIGINT handler (MicroPython running)?"""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        return False
    return True  # no procfs (macOS): assume so


def _ignore_sigint() -> None:
    # Until the unix port installs its handler a SIGINT is ignored, not fatal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def parse_bus(spec: str | None) -> str | None:
    """``keidrive:CHANNEL`` (or ``none``) -> channel name or None."""
    if spec is None or spec.lower() == "none":
        return None
    interface, _, channel = spec.partition(":")
    if interface != "keidrive" or not channel:
        raise KeidriveError(f"--bus wants keidrive:CHANNEL (the keidrive virtual CAN bus) or none, got {spec!r}")
    return channel


class VirtualBoard:
    def __init__(self, root: str | os.PathLike, board: str = "esp32", bus: str | None = "keidrive:sim0",
                 heap: str | None = None):
        self.root = Path(root).resolve()
        self.kind = board_kind(board)
        self.channel = parse_bus(bus)
        self.heap = heap
        self.engine = micropython_command()
        self.master = -1
        self.slave = -1
        self.path = ""
        self.child: subprocess.Popen | None = None
        self.to_child = bytearray()
        self.to_pty = bytearray()
        self.pty_stalled_since: float | None = None
        self.pending_interrupts = 0
        self.resets = 0
        self.crashes: list[float] = []
        self.selector = selectors.DefaultSelector()
        self._stop = False

    # -- set up -------------------------------------------------------------

    def open(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        self.master, self.slave = os.openpty()
        # A board's UART: no echo, no line editing, no CR/LF translation,
        # whatever a client later sets
        tty.setraw(self.slave, termios.TCSANOW)
        for fd in (self.master,):
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.path = os.ttyname(self.slave)
        self.selector.register(self.master, selectors.EVENT_READ, "pty")
        self._start("power")
        return self.path

    def describe(self) -> str:
        bus = f"CAN on keidrive:{self.channel}" if self.channel else "no CAN bus"
        return (f"keidrive virtual {self.kind.name} board (MicroPython unix port engine), "
                f"files {self.root}, {bus}, console {self.path}")

    def _bus_path(self) -> str:
        if self.channel is None:
            return "-"
        from ..vbus.hub import ensure_hub

        return ensure_hub(self.channel)

    def _start(self, mode: str) -> None:
        machine = f"{VIRTUAL_MARK} with {self.kind.chip} (engine: MicroPython unix port, {{arch}})"
        command = [self.engine]
        if self.heap:
            command += ["-X", f"heapsize={self.heap}"]
        wiring = dict(self.kind.can_config)
        mcp = "-" if self.kind.default_can_port != "mcp2515" else \
            f"{wiring['mcp2515_spi']},{wiring['pin_cs']},{wiring['pin_int']}"
        command += [str(AGENT), str(self.root), mode, self.kind.platform, machine, self._bus_path(), mcp]
        self.child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_ignore_sigint,
            start_new_session=True,
            cwd=str(self.root),
        )
        for pipe in (self.child.stdin, self.child.stdout):
            flags = fcntl.fcntl(pipe.fileno(), fcntl.F_GETFL)
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.selector.register(self.child.stdout.fileno(), selectors.EVENT_READ, "child")
        self._update_child_events()

    # -- the loop -------------------------------------------------------------

    def serve(self, stop_after: float | None = None) -> None:
        deadline = None if stop_after is None else time.monotonic() + stop_after
        while not self._stop:
            timeout = 0.5
            if self.pending_interrupts or self.to_pty:
                timeout = 0.01
            for key, events in self.selector.select(timeout):
                if key.data == "pty":
                    if events & selectors.EVENT_READ:
                        self._from_pty()
                    if events & selectors.EVENT_WRITE:
                        self._flush_pty()
                elif key.data == "child":
                    self._from_child()
                elif key.data == "child-in":
                    self._flush_child()
            self._deliver_interrupts()
            if self.to_pty:
                self._flush_pty()
            if deadline is not None and time.monotonic() >= deadline:
                break

    def stop(self, *_args) -> None:
        self._stop = True

    def close(self) -> None:
        if self.child is not None:
            self._kill_child()
        for fd in (self.master, self.slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = -1

    # -- client -> engine ----------------------------------------------------

    def _from_pty(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError as error:
            if error.errno == errno.EIO:  # cannot happen while we hold the slave
                return
            raise
        if not data:
            return
        parts = data.split(b"\x03")
        for index, part in enumerate(parts):
            if index:
                self.pending_interrupts += 1
            if part:
                self.to_child += part
        self._flush_child()

    def _deliver_interrupts(self) -> None:
        child = self.child
        if not self.pending_interrupts or child is None or child.poll() is not None:
            return
        if not _sigint_caught(child.pid):
            return  # still starting: deliver once MicroPython listens
        # One SIGINT stands for any number of Ctrl-C typed together
        self.pending_interrupts = 0
        try:
            os.kill(child.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def _flush_child(self) -> None:
        child = self.child
        if child is None or not self.to_child or child.poll() is not None:
            self._update_child_events()
            return
        try:
            sent = os.write(child.stdin.fileno(), self.to_child)
            del self.to_child[:sent]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            pass  # it is resetting; the bytes wait for the next engine
        self._update_child_events()

    def _update_child_events(self) -> None:
        child = self.child
        if child is None or child.stdin is None or child.stdin.closed:
            return
        fd = child.stdin.fileno()
        registered = fd in self.selector.get_map()
        if self.to_child and child.poll() is None and not registered:
            self.selector.register(fd, selectors.EVENT_WRITE, "child-in")
        elif (not self.to_child or child.poll() is not None) and registered:
            self.selector.unregister(fd)

    # -- engine -> client ------------------------------------------------------

    def _from_child(self) -> None:
        child = self.child
        try:
            data = os.read(child.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if data:
            self.to_pty += data
            self._flush_pty()
            return
        # EOF: the engine ended (a reset, or a crash)
        code = child.wait()
        self._forget_child()
        if code == EXIT_SOFT_FRIENDLY:
            mode = "friendly"
        elif code == EXIT_SOFT_RAW:
            mode = "raw"
        elif code == EXIT_HARD:
            mode = "power"
        else:
            now = time.monotonic()
            self.crashes = [t for t in self.crashes if now - t < 10] + [now]
            self.to_pty += (f"\r\n[keidrive virtual board: engine stopped with status {code}; "
                            f"power-cycling]\r\n").encode()
            self._flush_pty()
            if len(self.crashes) >= 3:
                time.sleep(1.0)  # no tight crash loop
            mode = "power"
        self.resets += 1
        self._start(mode)
        self._flush_child()

    def _forget_child(self) -> None:
        child = self.child
        for pipe in (child.stdout, child.stdin):
            try:
                self.selector.unregister(pipe.fileno())
            except (KeyError, ValueError):
                pass
            try:
                pipe.close()
            except OSError:
                pass
        self.child = None

    def _kill_child(self) -> None:
        child = self.child
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        child.wait()
        self._forget_child()

    def _flush_pty(self) -> None:
        if not self.to_pty:
            self._pty_events(False)
            return
        try:
            sent = os.write(self.master, self.to_pty)
            del self.to_pty[:sent]
            self.pty_stalled_since = None
        except BlockingIOError:
            now = time.monotonic()
            if self.pty_stalled_since is None:
                self.pty_stalled_since = now
            elif now - self.pty_stalled_since > STALL_DROP_S:
                # Nobody reads the console: drop what waits in it, as a UART
                # with no host attached loses its bytes
                termios.tcflush(self.slave, termios.TCIFLUSH)
                self.pty_stalled_since = None
        self._pty_events(bool(self.to_pty))

    def _pty_events(self, want_write: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
        self.selector.modify(self.master, events, "pty")


def run(root, board="esp32", bus="keidrive:sim0", link=None, heap=None, out=sys.stdout, uplink=None) -> int:
    """``keidrive board --pty``: serve until SIGTERM / SIGINT."""
    import shutil
    import tempfile

    temporary = None
    if root is None:
        temporary = tempfile.mkdtemp(prefix=f"keidrive-vboard-{board}-")
        root = temporary
    if uplink is not None:
        from ..uplink import provision

        provision(Path(root), uplink, board)
    vb = VirtualBoard(root, board=board, bus=bus, heap=heap)
    try:
        vb.open()
        if link:
            try:
                if os.path.islink(link):
                    os.unlink(link)
                os.symlink(vb.path, link)
            except OSError as error:
                raise KeidriveError(f"cannot create link {link}: {error.strerror}") from None
        print(vb.describe(), file=out, flush=True)
        signal.signal(signal.SIGTERM, vb.stop)
        signal.signal(signal.SIGINT, vb.stop)
        signal.signal(signal.SIGHUP, vb.stop)
        vb.serve()
    finally:
        vb.close()
        if link and os.path.islink(link):
            os.unlink(link)
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0
