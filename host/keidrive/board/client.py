"""Talking to a board's MicroPython REPL, over mpremote's own transport.

``Board`` opens the port (one clear error for a missing or busy port), makes
sure a MicroPython REPL answers within a deadline (mpremote itself would wait
forever on a pty), then runs code through ``mpremote.transport_serial.
SerialTransport`` in the raw REPL with raw-paste mode, exactly as ``mpremote``
does.

Every session has an overall deadline: mpremote's reads time out only
between characters, so a board that keeps printing would hold them forever.
At the deadline the port is closed under them and the operation ends with
one line; a reply that is not what the code printed (output of the board's
own interleaved with it) is one line too, never a traceback.
"""

from __future__ import annotations

import ast
import base64
import errno
import hashlib
import os
import threading
import time
from dataclasses import dataclass

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from ..errors import KeidriveError
from . import FLASH_DEADLINE_S
from .boards import VIRTUAL_MARK, mpy_arch, mpy_version

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
UPLOAD_CHUNK = 3072  # raw bytes per exec (4 KiB of base64 source)


def check_deadline(seconds: float) -> float:
    if not seconds > 0:
        raise KeidriveError(f"--deadline must be a positive number of seconds, got {seconds:g}")
    return seconds


def check_port(port: str) -> None:
    """Fail with one line if ``port`` cannot be opened: missing, busy, denied."""
    if "://" in port:
        return  # a pyserial URL: let it speak for itself
    if not os.path.exists(port):
        raise KeidriveError(f"no such port: {port}")
    try:
        probe = serial.Serial(port, 115200, timeout=0, exclusive=True)
    except serial.SerialException as error:
        text = str(error)
        if "exclusively lock" in text or getattr(error, "errno", None) in (errno.EBUSY, errno.EAGAIN):
            raise KeidriveError(f"port busy: {port} is open in another program (mpremote, a monitor, screen?)") from None
        if getattr(error, "errno", None) == errno.EACCES:
            raise KeidriveError(f"permission denied on {port}: add yourself to the dialout/uucp group") from None
        raise KeidriveError(f"cannot open {port}: {text}") from None
    probe.close()


@dataclass
class Identity:
    platform: str
    machine: str
    version: tuple
    sys_mpy: int

    @property
    def virtual(self) -> bool:
        return VIRTUAL_MARK in self.machine

    @property
    def arch(self) -> str | None:
        return mpy_arch(self.sys_mpy) if self.sys_mpy else None

    @property
    def mpy(self) -> tuple[int, int] | None:
        return mpy_version(self.sys_mpy) if self.sys_mpy else None

    def describe(self) -> str:
        v = ".".join(str(x) for x in self.version)
        mpy = "%d.%d" % self.mpy if self.mpy else "none"
        return f"MicroPython {v} on {self.machine} (sys.platform {self.platform!r}, mpy {mpy}, arch {self.arch})"


class Board:
    """A MicroPython board on a serial port, in the raw REPL while open."""

    def __init__(self, port: str, answer_timeout: float = 5.0, soft_reset: bool = True,
                 deadline: float = FLASH_DEADLINE_S):
        check_port(port)
        self.port = port
        self.deadline = check_deadline(deadline)
        self._expired = threading.Event()
        try:
            self.transport = SerialTransport(port, baudrate=115200, timeout=2)
        except TransportError as error:
            raise KeidriveError(f"cannot open {port}: {error}") from None
        self.serial = self.transport.serial
        self._timer = threading.Timer(deadline, self._expire)
        self._timer.daemon = True
        self._timer.start()
        try:
            with self._guard("did not answer"):
                self._wait_for_repl(min(answer_timeout, deadline))
                self.transport.enter_raw_repl(soft_reset=soft_reset)
        except KeidriveError:
            self._shut()
            raise

    def _expire(self) -> None:
        """The deadline: close the port under whatever read is waiting on it."""
        self._expired.set()
        try:
            self.serial.cancel_read()
        except Exception:  # pyserial without cancel_read, or already closed
            pass
        try:
            self.serial.close()
        except Exception:
            pass

    def _shut(self) -> None:
        self._timer.cancel()
        try:
            self.transport.close()
        except Exception:
            pass

    def _guard(self, doing: str):
        return _Guard(self, doing)

    # -- connection --------------------------------------------------------------

    def _wait_for_repl(self, timeout: float) -> None:
        """Interrupt whatever runs and reach the raw REPL banner, or fail clearly."""
        ser = self.serial
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            ser.write(b"\r\x03\x03")
            time.sleep(0.05)
            ser.reset_input_buffer()
            ser.write(b"\r\x01")
            attempt_end = min(deadline, time.monotonic() + 1.0)
            data = b""
            while time.monotonic() < attempt_end:
                waiting = ser.in_waiting
                chunk = ser.read(waiting or 1) if waiting else b""
                if not chunk:
                    time.sleep(0.01)
                    continue
                data += chunk
                if RAW_BANNER in data:
                    # leave the ">" prompt for mpremote's enter_raw_repl/exec
                    return
            seen = (seen + data)[-200:]
        hint = " (it printed something that is not a MicroPython REPL)" if seen.strip() else ""
        raise KeidriveError(f"board did not answer on {self.port}: no MicroPython raw REPL within {timeout:g} s{hint}")

    def close(self, leave: str = "friendly") -> None:
        """leave: "friendly" (back to the >>> prompt), "reset" (soft reset: main.py runs)."""
        try:
            with self._guard("did not leave the raw REPL"):
                if leave == "reset":
                    self.soft_reset_to_main()
                else:
                    self.transport.exit_raw_repl()
        except KeidriveError:
            if self._expired.is_set():
                raise  # the caller must hear the board did not finish in time
        finally:
            self._shut()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def soft_reset_to_main(self, timeout: float = 5.0) -> bool:
        """Ctrl-B then Ctrl-D at the friendly prompt: soft reboot, main.py runs."""
        self.transport.exit_raw_repl()
        time.sleep(0.05)
        self.serial.reset_input_buffer()
        self.serial.write(b"\x04")
        data = self.transport.read_until(1, b"soft reboot\r\n", timeout=timeout)
        return data.endswith(b"soft reboot\r\n")

    # -- running code -------------------------------------------------------------

    def exec(self, code: str) -> bytes:
        with self._guard("stopped answering"):
            try:
                return self.transport.exec(code)
            except TransportExecError as error:
                raise BoardError(
                    error.error_output.strip().splitlines()[-1] if error.error_output.strip() else "error",
                    error.error_output,
                ) from None

    def eval(self, expression: str):
        return self.parse_reply(self.exec(f"print(repr({expression}))"))

    def parse_reply(self, reply: bytes):
        """The Python literal a command printed; one clear error for anything else."""
        text = reply.decode("utf-8", "replace").strip()
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise KeidriveError(
                f"malformed reply from the board on {self.port}: {shown!r} (is something on it printing?)"
            ) from None

    def identity(self) -> Identity:
        info = self.eval(
            "(__import__('sys').platform, "
            "getattr(__import__('sys').implementation, '_mpy', 0), "
            "tuple(__import__('sys').implementation.version[:3]), "
            "(__import__('os').uname().machine if hasattr(__import__('os'), 'uname') "
            "else __import__('sys').implementation._machine))"
        )
        try:
            platform, sys_mpy, version, machine = info
            return Identity(platform=str(platform), machine=str(machine), version=tuple(version), sys_mpy=int(sys_mpy))
        except (TypeError, ValueError):
            raise KeidriveError(f"malformed reply from the board on {self.port}: {info!r} is no identity") from None

    # -- files ----------------------------------------------------------------------

    def read_file(self, path: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        code = (
            "import binascii\n"
            "try:\n f=open(%r,'rb')\nexcept OSError:\n print('None')\nelse:\n"
            " print(repr(binascii.b2a_base64(f.read())))\n f.close()" % path
        )
        reply = self.exec(code)
        if reply.strip() == b"None":
            return None
        encoded = self.parse_reply(reply)
        try:
            return base64.b64decode(encoded, validate=False)
        except (TypeError, ValueError):
            raise KeidriveError(f"malformed reply from the board on {self.port} reading {path}") from None

    def write_file(self, path: str, data: bytes, progress=None) -> None:
        self.exec(f"from binascii import a2b_base64 as _d\n_f=open({path!r},'wb')\n_w=_f.write")
        for offset in range(0, len(data), UPLOAD_CHUNK):
            chunk = base64.b64encode(data[offset:offset + UPLOAD_CHUNK]).decode()
            self.exec(f"_w(_d({chunk!r}))")
            if progress:
                progress(min(offset + UPLOAD_CHUNK, len(data)), len(data))
        self.exec("_f.close()\ndel _f,_w,_d")

    def hashes(self, paths: list[str]) -> dict:
        """sha256 hex of each file on the board (None: missing; {} without hashlib)."""
        code = (
            "try:\n import hashlib,binascii\nexcept ImportError:\n hashlib=None\n"
            "_r={}\n"
            "if hashlib:\n"
            " _b=bytearray(512)\n"
            " for _p in %r:\n"
            "  try:\n   _f=open(_p,'rb')\n  except OSError:\n   _r[_p]=None\n   continue\n"
            "  _h=hashlib.sha256()\n"
            "  while True:\n   _n=_f.readinto(_b)\n   if not _n:\n    break\n   _h.update(_b[:_n])\n"
            "  _f.close()\n  _r[_p]=binascii.hexlify(_h.digest()).decode()\n"
            "print(repr(_r))" % (paths,)
        )
        hashes = self.parse_reply(self.exec(code))
        if not isinstance(hashes, dict):
            raise KeidriveError(f"malformed reply from the board on {self.port}: hashes {hashes!r}")
        return hashes


class _Guard:
    """Turns what a dead, chattering or expired session raises into one line."""

    def __init__(self, board: Board, doing: str):
        self.board = board
        self.doing = doing

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _traceback):
        board = self.board
        if board._expired.is_set() and kind is not None and not isinstance(error, BoardError):
            raise KeidriveError(
                f"the board on {board.port} did not finish within {board.deadline:g} s (--deadline): "
                "it keeps printing or stopped answering"
            ) from None
        if kind is not None and issubclass(kind, (TransportError, OSError, serial.SerialException, TypeError)):
            raise KeidriveError(f"board {self.doing} on {board.port}: {error}") from None
        return False


class BoardError(KeidriveError):
    """An exception raised by code on the board (last line of its traceback)."""

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.traceback = traceback


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
