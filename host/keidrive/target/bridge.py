"""The firmware on the qemu board, behind main.py's own command line.

    python -m keidrive.target.bridge qemu|qemu-mpy [--tree DIR] --stdin|--socket PATH
        --config PATH [--data DIR] [--clock virtual]

The harness starts this wherever it would start ``micropython main.py``: it
boots the qemu image (``qemu``: the firmware frozen in; ``qemu-mpy``: the
bare port, the firmware as .mpy files in a ROMFS image sent over the UART
and mounted in RAM), runs
``keifw.link.run_serial`` over the raw REPL, frames the records it reads
(stdin, or a hub socket) onto the board's UART, and prints the firmware's
telemetry lines on stdout. The board keeps no files (``--data`` is ignored:
the trip lives only as long as the run) and runs on the virtual clock.
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import sys
import tempfile
import threading
from pathlib import Path

from ..errors import KeidriveError
from ..io import record
from . import link

RUNTIMES = ("qemu", "qemu-mpy")
# Unfrozen, the application is a ROMFS image in the heap (193 KB of .mpy
# since the GNSS reader, the state boundaries and the uplink) beside the
# firmware's data: measured here, it no longer fits in 256 or 320 KiB
# (MemoryError); frozen, as a user flashes it, it runs in 128 KiB.
MPY_HEAP = 384 * 1024
CHUNK_RECORDS = 512


def main_arguments(p: argparse.ArgumentParser) -> None:
    """main.py's own command line, as the harness gives it to a board's runner."""
    p.add_argument("--tree", help="the firmware tree (default: the bundled one)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--stdin", action="store_true")
    source.add_argument("--socket")
    p.add_argument("--config", required=True)
    p.add_argument("--data")
    p.add_argument("--clock", default="virtual", choices=("virtual", "real"))


def _parse(argv):
    p = argparse.ArgumentParser(prog="keidrive.target.bridge")
    p.add_argument("runtime", choices=RUNTIMES)
    main_arguments(p)
    p.add_argument("--heap", type=int)
    p.add_argument("--watch-heap", action="store_true", help="after the trip, the lowest free heap seen after a collection at each block read")
    return p.parse_args(argv)


def open_source(args):
    """The source's read function. A hub's socket is connected before the
    board boots: the harness waits only so long for the firmware to attach."""
    if args.stdin:
        return sys.stdin.buffer.read1
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(args.socket)
    return sock.recv


def _records(read):
    """Chunks of whole records from the source, up to the end of the drive."""
    pending = b""
    while True:
        data = read(CHUNK_RECORDS * record.SIZE)
        if not data:
            return
        pending += data
        whole = len(pending) - len(pending) % record.SIZE
        chunk, pending = pending[:whole], pending[whole:]
        for start in range(0, whole, record.SIZE):
            if chunk[start + 12] & record.FLAG_CONTROL and chunk[start + 8] == record.CONTROL_END_OF_DRIVE:
                yield chunk[:start]
                return
        yield chunk


def script(cfg: dict, watch_heap: bool = False, romfs_size: int = 0) -> str:
    """What the board runs: with ``romfs_size``, first take that many bytes of
    a ROMFS image from the UART and mount it (the firmware's .mpy files)."""
    code = ""
    if romfs_size:
        code = (
            "import sys, vfs, micropython\n"
            "micropython.kbd_intr(-1)\n"
            f"rom = bytearray({romfs_size})\n"
            "mv = memoryview(rom)\n"
            "got = 0\n"
            "print('romfs_ready')\n"
            "while got < len(rom):\n"
            "    got += sys.stdin.buffer.readinto(mv[got:])\n"
            "vfs.mount(vfs.VfsRom(rom), '/rom')\n"
            "sys.path.insert(0, '/rom')\n"
        )
    return code + f"from keifw import link\nlink.run_serial({cfg!r}, True, {watch_heap!r})\n"


def romfs_image(arch: str, tree: Path | None, workdir: Path) -> bytes:
    """The firmware as .mpy files for ``arch`` in a ROMFS image (mpremote's
    own builder), the way ``mpremote romfs deploy`` ships an application."""
    import contextlib
    import io

    from mpremote.romfs import make_romfs

    from .freeze import compile_mpy

    compile_mpy(arch, workdir, tree)
    (workdir / "main.py").unlink(missing_ok=True)  # the board runs link.run_serial, not main.py
    with contextlib.redirect_stdout(io.StringIO()):  # make_romfs lists every file
        return make_romfs(str(workdir), mpy_cross=False)


def serve(args) -> int:
    from .builder import build
    from .qemu import Machine, Session

    if args.clock != "virtual":
        raise KeidriveError("the qemu runtime runs on the virtual clock only (no --realtime)")
    read = open_source(args)
    cfg = json.loads(Path(args.config).read_text())
    cfg.pop("transmit", None)  # the UART carries records in, telemetry out: nothing goes back on the bus
    heap = args.heap or (MPY_HEAP if args.runtime == "qemu-mpy" else None)
    target = build("qemu", heap=heap)
    tree = Path(args.tree) if args.tree else None
    romfs = b""
    if args.runtime == "qemu-mpy":
        with tempfile.TemporaryDirectory(prefix="keidrive-mpy-") as mpy_dir:
            romfs = romfs_image(target.mpy_arch, tree, Path(mpy_dir))
        image = target.base
    elif tree is None:
        image = target.path
    else:
        from .builder import build_options
        from .freeze import application_image

        image = application_image(Path(target.src), Path(target.path).parent,
                                  build_options("qemu", target.heap_size), tree)
    with Machine(image) as machine:
        session = Session(machine)
        session.start(script(cfg, args.watch_heap, len(romfs)))
        return _relay(read, session, romfs)


def _relay(read, session, romfs: bytes = b"") -> int:
    out = sys.stdout.buffer
    stop = threading.Event()
    ready = threading.Event()

    # The source is drained as fast as it delivers (a hub does not wait for a
    # client that reads at the pace of a UART); the board gets it at its pace.
    pending: queue.Queue = queue.Queue()

    def drain():
        for chunk in _records(read):
            pending.put(chunk)
        pending.put(None)

    def feed():
        ready.wait()
        while not stop.is_set():
            chunk = pending.get()
            if chunk is None:
                session.write(link.ending())
                return
            if chunk:
                session.write(link.frame(chunk))

    for work in (drain, feed):
        threading.Thread(target=work, daemon=True).start()
    for line in session.lines():
        if line == b"romfs_ready":
            session.write(romfs)
            continue
        out.write(line + b"\n")
        out.flush()
        if not ready.is_set() and b'"link_ready"' in line:
            ready.set()
    stop.set()
    ready.set()
    if session.error_output.strip():
        sys.stderr.write(session.error_output.decode(errors="replace").strip() + "\n")
        return 1
    return 0


def main(argv=None, parse=_parse, run=serve) -> int:
    """The command line (``parse``, ``run``: another board's, as target/pico.py's)."""
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except KeidriveError as error:
        sys.stderr.write(f"keidrive: error: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
