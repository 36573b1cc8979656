"""keidrive board: a virtual dev board on a pseudo-terminal (tests, demos)."""

from . import options


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser(
        "board", help="run a virtual dev board on a pseudo-terminal (MicroPython unix port, virtual CAN)",
        description="Run a virtual dev board: the MicroPython unix port behind a pseudo-terminal, speaking the "
                    "normal REPL, the raw REPL and raw-paste mode as mpremote uses them, a folder as its file "
                    "system, soft reset re-running boot.py/main.py, and machine.CAN on the keidrive virtual bus. "
                    "The first output line ends with the pty path; it runs until interrupted.")
    p.add_argument("--pty", action="store_true",
                   help="serve the console on a new pseudo-terminal (what it always does: the flag may be left out)")
    p.add_argument("--board", default="esp32", choices=("esp32", "esp32s3", "rp2040", "stm32"),
                   help="the board family whose identity it shows (default: esp32)")
    p.add_argument("--root", metavar="DIR", help="folder holding the board's file system (default: a temporary "
                                                 "folder removed at exit)")
    p.add_argument("--bus", default="keidrive:sim0", metavar="keidrive:CHANNEL|none",
                   help="virtual CAN bus of its machine.CAN (default: keidrive:sim0)")
    p.add_argument("--link", metavar="PATH", help="also make PATH a symlink to the pty (a stable port name)")
    p.add_argument("--heap", metavar="SIZE", help="MicroPython heap size, e.g. 512k (default: the unix port's)")
    options.add_uplink(p, board=True)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..board import virtual

    return virtual.run(args.root, board=args.board, bus=args.bus, link=args.link, heap=args.heap, uplink=args.uplink)
