"""An emulated Raspberry Pi Pico on a pseudo-terminal: its USB console where
``keidrive flash``, ``keidrive monitor`` and mpremote find a board.

    python -m keidrive.target.picopty [--stock] [--records FILE] [--link PATH]

Boots the rp2040 target (``--stock``: MicroPython as it ships, nothing
frozen, an empty file system it formats at first boot, the image a user
flashes before ``keidrive flash``; otherwise the application image) with the
MCP2515 model on SPI0, prints ``pty: /dev/pts/N`` and serves until killed.
``--records`` (24-byte frame records, keidrive.io.record) go onto the chip's
bus at their own timestamps, the first one a second after firmware first
puts the chip in listen-only or normal mode (main.py opens the port before
it builds the firmware: frames that came sooner would wait in the driver's
ring, or be lost past it, as on a car whose bus is up before the board). What nobody reads from the pty for a second is
dropped, as a USB host that is not listening drops it.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path

from ..errors import KeidriveError
from . import pico

STALL_DROP_S = 1.0
START_NS = 1_000_000_000


class PtySession(pico.Session):
    """The console to and from a pty master; frames from the first time the chip receives."""

    def __init__(self, *args, master: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.master = master

    def receiving(self) -> None:
        if self.bus is not None and self.bus.start_ns is None:
            self.bus.start(self.nanos + START_NS)

    def output(self, data: bytes) -> None:
        deadline = time.monotonic() + STALL_DROP_S
        while data and time.monotonic() < deadline:
            try:
                data = data[os.write(self.master, data):]
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:  # nobody has the pty open: the bytes go nowhere
                return


def _typing(master: int, pico_: pico.rp2040js.Pico) -> None:
    """What a client writes to the pty, into the Pico's console."""
    while True:
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            time.sleep(0.005)
            continue
        except OSError:  # no client has the pty open (EIO): wait for one
            time.sleep(0.05)
            continue
        if not data:
            time.sleep(0.05)
            continue
        try:
            pico_.write(data)
        except (BrokenPipeError, ValueError):
            return


def serve(stock: bool, records: Path | None, link: Path | None) -> int:
    from .builder import build

    target = build("rp2040")
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)  # a USB CDC port: no echo, no line editing, no CR/LF translation
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    if link is not None:
        link.unlink(missing_ok=True)
        link.symlink_to(path)
    cfg = pico.board_config({})
    mcp = pico.model()
    chip = pico.chip_for(mcp, cfg)
    read = io.BytesIO(records.read_bytes()).read if records is not None else (lambda n: b"")
    with tempfile.TemporaryDirectory(prefix="keidrive-picopty-") as tmp:
        if stock:
            pico_ = pico.rp2040js.Pico(target.base, device=True, cs_pin=cfg["pin_cs"], int_pin=cfg["pin_int"])
        else:
            pico_ = pico.boot(target, cfg, None, Path(tmp))
        with pico_:
            print(f"pty: {path}", flush=True)
            threading.Thread(target=_typing, args=(master, pico_), daemon=True).start()
            bus = pico.Bus(chip, cfg["can_bitrate"], read, mcp.frame_bits)
            return PtySession(pico_, chip, bus, master=master).run()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="keidrive.target.picopty", description=__doc__.split("\n\n")[0])
    p.add_argument("--stock", action="store_true", help="MicroPython as it ships (nothing frozen, empty file system)")
    p.add_argument("--records", type=Path, help="24-byte frame records to put on the MCP2515's bus")
    p.add_argument("--link", type=Path, help="a symlink to the pty at this path")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.records is not None and not args.records.is_file():
            raise KeidriveError(f"--records {args.records}: no such file")
        return serve(args.stock, args.records, args.link)
    except KeidriveError as error:
        sys.stderr.write(f"keidrive: error: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
