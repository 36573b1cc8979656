"""``keidrive dbc compile``: DBC files -> one self-contained MicroPython module."""

import argparse
from pathlib import Path

from ..errors import KeidriveError


def _compile(args: argparse.Namespace) -> int:
    # Imported here so `keidrive --help` does not pay for cantools.
    from .. import dbccompiler

    if args.firmware:
        if args.dbc or args.output or args.node or args.messages or args.hw_filters:
            raise KeidriveError("--firmware takes no other arguments (it compiles dbc/ into firmware/)")
        for path in dbccompiler.regenerate_firmware():
            print(f"wrote {path}")
        return 0
    if not args.dbc:
        raise KeidriveError("no DBC file given")
    if args.output is None:
        raise KeidriveError("no output file given (-o OUT.py)")
    max_filters = dbccompiler.DEFAULT_MAX_FILTERS if args.hw_filters is None else args.hw_filters
    if max_filters < 1:
        raise KeidriveError("--hw-filters must be at least 1")
    names = [name for name in args.messages.split(",") if name] if args.messages is not None else None
    text = dbccompiler.compile_dbc(args.dbc, args.node, names, max_filters=max_filters)
    dbccompiler.write_module(text, args.output)
    return 0


def add_subparser(subparsers) -> None:
    parser = subparsers.add_parser("dbc", help="DBC tools", description="DBC tools.")
    commands = parser.add_subparsers(title="commands", dest="dbc_command", metavar="COMMAND")
    commands.required = True
    compile_parser = commands.add_parser(
        "compile",
        help="compile DBC files into a MicroPython decoder/encoder module",
        description=(
            "Compile DBC files into one self-contained MicroPython module (also importable by CPython). "
            "With --node: the messages NODE receives a signal of are decoded, those it sends also get "
            "encoders. Without --node: every message is decoded and encodable."
        ),
    )
    compile_parser.add_argument("dbc", nargs="*", type=Path, metavar="DBC", help="input DBC files")
    compile_parser.add_argument("-o", "--output", type=Path, metavar="OUT.py", help="generated module")
    compile_parser.add_argument("--node", metavar="NAME", help="the node the module is for (e.g. KEIDRIVE)")
    compile_parser.add_argument("--messages", metavar="NAME,...", help="only these messages")
    compile_parser.add_argument(
        "--hw-filters", type=int, metavar="N",
        help="hardware acceptance filters for CAN_FILTERS (the board's machine.CAN.filters_max; default 8)",
    )
    compile_parser.add_argument(
        "--firmware", action="store_true",
        help="regenerate firmware/keifw/vehicles/*.py from dbc/ (node KEIDRIVE)",
    )
    compile_parser.set_defaults(func=_compile)
