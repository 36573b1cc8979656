# The console of a keidrive virtual dev board. Runs INSIDE the MicroPython
# unix port (not CPython): it is the board's pyexec, written in Python.
#
#   micropython kd_agent.py ROOT MODE PLATFORM MACHINE BUS_SOCKET [MCP2515]
#
# ROOT is the board's file system (mounted at "/" with VfsPosix), MODE is
# "power" (power-on: boot.py, main.py, friendly REPL), "friendly" (soft reset
# from the friendly REPL: "MPY: soft reboot" was already printed by the
# previous run; boot.py, main.py, friendly REPL) or "raw" (soft reset from the
# raw REPL: boot.py only, then the raw REPL). PLATFORM/MACHINE is the identity
# the board shows (sys.platform, os.uname().machine); BUS_SOCKET the keidrive
# virtual CAN hub its machine.CAN (or MCP2515) talks to ("-" for none);
# MCP2515 the wiring of the board's MCP2515 ("SPI id,CS pin,INT pin").
#
# The host process (keidrive.board.virtual) owns the pty: it feeds the bytes a
# client writes to this process's stdin, turns Ctrl-C into SIGINT (a
# KeyboardInterrupt here, as the UART IRQ does on a board) and copies stdout
# to the pty. A soft reset ends this process with one of the EXIT_ codes and
# the host starts a fresh interpreter: a clean heap and module table, as on a
# board.
#
# The REPL protocol follows shared/runtime/pyexec.c: friendly REPL, raw REPL
# (Ctrl-A; "OK", output, \x04, exception, \x04, ">"), raw-paste mode
# (Ctrl-E 'A' Ctrl-A -> "R\x01", window size, \x01 flow control) and soft
# reset (Ctrl-D on an empty line).

import sys
import os
import io

try:
    import micropython

    # While the agent sets the board up a Ctrl-C must not stop the engine: with
    # the SIGINT handler off, the host holds it (virtual.py signals only an
    # engine that catches SIGINT) until main() takes it.
    micropython.kbd_intr(-1)
except (ImportError, AttributeError):  # pragma: no cover
    micropython = None

EXIT_SOFT_FRIENDLY = 80
EXIT_SOFT_RAW = 81
EXIT_HARD = 82

ARGS = sys.argv[1:]
ROOT = ARGS[0]
MODE = ARGS[1]
PLATFORM = ARGS[2]
_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
          "xtensa", "xtensawin", "rv32imc", "rv64imc")
_a = getattr(sys.implementation, "_mpy", 0) >> 10
ARCH = _ARCHS[_a] if _a < len(_ARCHS) and _ARCHS[_a] else "no native code"
MACHINE = ARGS[3].replace("{arch}", ARCH)
BUS = ARGS[4] if len(ARGS) > 4 else "-"
MCP2515 = ARGS[5] if len(ARGS) > 5 else "-"  # "SPI id,CS pin,INT pin" of its MCP2515, or "-"
AGENT_FILE = sys.argv[0]

IN = sys.stdin.buffer
OUT = sys.stdout.buffer

# Flow-control window of raw-paste mode: half of a 256-byte stdin buffer, as
# MICROPY_REPL_STDIN_BUFFER_MAX on the ESP32 port.
PASTE_WINDOW = 128

VERSION = "%d.%d.%d" % sys.implementation.version[:3]
BANNER = "MicroPython v%s on 2026-01-01; %s" % (VERSION, MACHINE)

FRIENDLY = 0
RAW = 1


def out(b):
    OUT.write(b)


def out_cooked(s):
    # The board's mp_plat_print turns "\n" into "\r\n"
    out(s.replace("\n", "\r\n").encode())


# ---- identity and machine: set up before "/" becomes the board folder -------

import kd_machine  # noqa: E402  (from this folder, on sys.path as the script's dir)

kd_machine._configure(BUS, PLATFORM, MCP2515)
sys.modules["machine"] = kd_machine
sys.modules["time"] = kd_machine._Time(__import__("time"))


class _Sys:
    """sys as the board shows it: the real module with the board's platform."""

    def __init__(self):
        self.platform = PLATFORM
        self.argv = []

    def __getattr__(self, name):
        return getattr(sys, name)


try:
    from collections import namedtuple

    _Uname = namedtuple("uname_result", ("sysname", "nodename", "release", "version", "machine"))
except ImportError:  # pragma: no cover
    _Uname = None


class _Os:
    """os as the board shows it: uname(), and 4-tuple ilistdir entries with sizes."""

    def __getattr__(self, name):
        return getattr(os, name)

    def rename(self, old, new):
        # VfsPosix(root).rename() of this unix port builds both host paths in
        # one shared buffer and renames the new path onto itself (ENOENT):
        # rename through an unrooted VfsPosix with the host paths instead.
        _HOSTFS.rename(_host_path(old), _host_path(new))

    def uname(self):
        return _Uname(PLATFORM, PLATFORM, VERSION, "v%s on 2026-01-01" % VERSION, MACHINE)

    def ilistdir(self, path="."):
        for entry in os.ilistdir(path):
            if len(entry) >= 4:
                yield entry
                continue
            name, kind, ino = entry[0], entry[1], entry[2]
            size = 0
            if kind == 0x8000:
                try:
                    size = os.stat((path.rstrip("/") + "/" if path not in ("", ".") else "") + name)[6]
                except OSError:
                    pass
            yield (name, kind, ino, size)


_HOSTFS = os.VfsPosix()


def _host_path(path):
    """The host path of a board path (absolute or relative to the board's cwd)."""
    if not path.startswith("/"):
        cwd = os.getcwd()
        path = cwd.rstrip("/") + "/" + path
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return ROOT.rstrip("/") + "/" + "/".join(parts)


sys.modules["sys"] = _Sys()
sys.modules["os"] = _Os()
sys.modules["uos"] = sys.modules["os"]

os.umount("/")
os.mount(os.VfsPosix(ROOT), "/")
os.chdir("/")
sys.path[:] = ["", ".frozen", "/lib"]

G = {"__name__": "__main__"}


# ---- executing code ---------------------------------------------------------


class SoftReset(Exception):
    pass


def print_exc(e):
    buf = io.StringIO()
    sys.print_exception(e, buf)
    lines = buf.getvalue().split("\n")
    keep = []
    for line in lines:
        if AGENT_FILE in line and line.lstrip().startswith("File"):
            continue
        keep.append(line)
    out_cooked("\n".join(keep))


def run_code(src, filename, kind, framed):
    """Compile and run; True if the code asked for a reset (SystemExit).

    framed: raw REPL, print \\x04 after the output and after the exception."""
    try:
        code = compile(src, filename, kind)
        exec(code, G)
    except SystemExit:
        if framed:
            out(b"\x04\x04")
        return True
    except BaseException as e:  # noqa: B902 - the board prints everything
        if framed:
            out(b"\x04")
        print_exc(e)
        if framed:
            out(b"\x04")
        return False
    if framed:
        out(b"\x04\x04")
    return False


def run_file(name):
    """boot.py / main.py: True if it asked for a soft reset."""
    try:
        with open(name) as f:
            src = f.read()
    except OSError:
        return False
    G["__file__"] = name
    try:
        return run_code(src, name, "exec", False)
    finally:
        G.pop("__file__", None)


# ---- input ------------------------------------------------------------------


def getc():
    """One byte from the console; Ctrl-C arrives as SIGINT and reads as 3."""
    try:
        b = IN.read(1)
    except KeyboardInterrupt:
        return 3
    if not b:
        raise EOFError
    return b[0]


# ---- raw REPL ---------------------------------------------------------------


def raw_paste(cmd):
    """After Ctrl-E <cmd> Ctrl-A: True if the code asked for a soft reset."""
    if cmd != 0x41:  # 'A'
        out(b"R\x00")
        return False
    out(b"R\x01")
    out(bytes((PASTE_WINDOW & 0xFF, PASTE_WINDOW >> 8, 0x01)))
    remain = PASTE_WINDOW
    src = bytearray()
    while True:
        c = getc()
        if c == 3 or c == 4:
            out(b"\x04")  # end of data acknowledged
            if c == 3:
                out(b"\x04")
                out_cooked("Traceback (most recent call last):\nKeyboardInterrupt: \n")
                out(b"\x04")
                return False
            break
        src.append(c)
        remain -= 1
        if remain == 0:
            out(b"\x01")
            remain = PASTE_WINDOW
    return run_code(bytes(src), "<stdin>", "exec", True)


def raw_repl():
    """The raw REPL; returns FRIENDLY (Ctrl-B) or raises SoftReset."""
    out(b"raw REPL; CTRL-B to exit\r\n")
    line = bytearray()
    out(b">")
    while True:
        c = getc()
        if c == 1:  # Ctrl-A
            if len(line) == 2 and line[0] == 5:
                if raw_paste(line[1]):
                    raise SoftReset(EXIT_SOFT_RAW)
                line = bytearray()
                out(b">")
                continue
            out(b"raw REPL; CTRL-B to exit\r\n")
            line = bytearray()
            out(b">")
        elif c == 2:  # Ctrl-B
            out(b"\r\n")
            return FRIENDLY
        elif c == 3:
            line = bytearray()
        elif c == 4:
            out(b"OK")
            if not line:
                out(b"\r\n")
                raise SoftReset(EXIT_SOFT_RAW)
            if run_code(bytes(line), "<stdin>", "exec", True):
                raise SoftReset(EXIT_SOFT_RAW)
            line = bytearray()
            out(b">")
        else:
            line.append(c)


# ---- friendly REPL ----------------------------------------------------------

def _needs_more(text):
    """A first line that opens a block (or leaves a bracket open)."""
    text = text.rstrip()
    if text.endswith(":") or text.endswith("\\"):
        return True
    depth = 0
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
    return depth > 0 or quote is not None


def banner():
    out_cooked(BANNER + '\nType "help()" for more information.\n')


def friendly_repl():
    """The friendly REPL; returns RAW (Ctrl-A) or raises SoftReset."""
    banner()
    src = ""
    line = bytearray()
    out(b">>> ")
    last = 0
    while True:
        c = getc()
        if c == 1 and not src and not line:  # Ctrl-A: raw REPL
            out(b"\r\n")
            return RAW
        if c == 2 and not src and not line:  # Ctrl-B: banner again
            out(b"\r\n")
            banner()
            out(b">>> ")
        elif c == 3:  # Ctrl-C: cancel
            out(b"\r\n")
            src = ""
            line = bytearray()
            out(b">>> ")
        elif c == 4:
            if not src and not line:  # Ctrl-D on an empty line: soft reset
                out(b"\r\n")
                raise SoftReset(EXIT_SOFT_FRIENDLY)
            out(b"\r\n")
            full = src + line.decode()
            src = ""
            line = bytearray()
            if run_code(full, "<stdin>", "exec", False):
                raise SoftReset(EXIT_SOFT_FRIENDLY)
            out(b">>> ")
        elif c == 5 and not src and not line:  # Ctrl-E: paste mode
            out(b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
            if paste_mode():
                raise SoftReset(EXIT_SOFT_FRIENDLY)
            out(b">>> ")
        elif c == 0x1B:  # escape sequence (arrow keys...): ignored
            getc()
            getc()
        elif c in (8, 0x7F):
            if line:
                line = line[:-1]
                out(b"\x08 \x08")
        elif c == 10 and last == 13:
            pass  # "\r\n" from a terminal: one Enter
        elif c == 13 or c == 10:
            out(b"\r\n")
            text = line.decode()
            line = bytearray()
            if src:
                # a block ends at an empty line; a bracket when it closes
                block = src.split("\n", 1)[0].rstrip().endswith(":")
                if text.strip() and (block or _needs_more(src + text)):
                    src += text + "\n"
                    out(b"... ")
                    last = c
                    continue
                full = src + text + "\n"
                src = ""
                kind = "exec" if block else "single"
                if run_code(full, "<stdin>", kind, False):
                    raise SoftReset(EXIT_SOFT_FRIENDLY)
            elif _needs_more(text):
                src = text + "\n"
                out(b"... ")
                last = c
                continue
            elif text.strip():
                if run_code(text, "<stdin>", "single", False):
                    raise SoftReset(EXIT_SOFT_FRIENDLY)
            out(b">>> ")
        elif c >= 32 or c == 9:
            line.append(c)
            out(bytes((c,)))
        last = c


def paste_mode():
    buf = bytearray()
    while True:
        c = getc()
        if c == 3:
            out(b"\r\n")
            return False
        if c == 4:
            out(b"\r\n")
            return run_code(bytes(buf), "<stdin>", "exec", False)
        buf.append(c)
        if c == 13:
            out(b"\r\n=== ")
        else:
            out(bytes((c,)))


# ---- the board's life -------------------------------------------------------


def reset(code):
    if code != EXIT_HARD:
        out(b"MPY: soft reboot\r\n")
    try:
        kd_machine._shutdown()
    except Exception:
        pass
    raise SystemExit(code)


def boot(mode):
    """boot.py, then main.py unless the reset came from the raw REPL."""
    if run_file("boot.py"):
        return EXIT_SOFT_FRIENDLY
    if mode != "raw" and run_file("main.py"):
        return EXIT_SOFT_FRIENDLY
    return None


def _startup_interrupt():
    """True if a Ctrl-C came while the board started (the host sends the SIGINT it held within its 10 ms poll)."""
    if micropython is None:
        return False
    micropython.kbd_intr(3)
    try:
        import time

        time.sleep_ms(30)
    except KeyboardInterrupt:
        return True
    return False


def main():
    state = RAW if MODE == "raw" else FRIENDLY
    try:
        code = None if _startup_interrupt() else boot(MODE)  # Ctrl-C at power-up: no boot.py / main.py
    except KeyboardInterrupt:
        code = None
    if code is not None:
        reset(EXIT_HARD if kd_machine._hard_reset else code)
    while True:
        try:
            state = raw_repl() if state == RAW else friendly_repl()
        except SoftReset as r:
            reset(EXIT_HARD if kd_machine._hard_reset else r.args[0])
        except KeyboardInterrupt:
            # Ctrl-C landed between two reads: the REPL starts over, as after a
            # Ctrl-C on a board
            out(b"\r\n")
        except EOFError:
            raise SystemExit(0)


main()
