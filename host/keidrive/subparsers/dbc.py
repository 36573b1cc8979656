"""``keidrive dbc compile``: DBC files -> one MicroPython module (beside the shared keifw/dbcrt.py)."""

import argparse
import os
import sys
from pathlib import Path

from .. import paths
from ..errors import KeidriveError


def _compile(args: argparse.Namespace) -> int:
    # Imported here so `keidrive --help` does not pay for cantools.
    from .. import dbccompiler

    if args.firmware:
        if args.dbc or args.output or args.node or args.messages or args.hw_filters or args.roles:
            raise KeidriveError("--firmware takes no other arguments but --tree (it compiles dbc/ into firmware/)")
        root = _checkout(args.tree)
        installed_fw, installed_dbc = paths.firmware_dir(), paths.dbc_dir()
        for output, inputs in dbccompiler.firmware_modules():
            # The module list is the compiler's; the trees are the checkout's.
            target = root / "firmware" / output.relative_to(installed_fw)
            sources = [root / "dbc" / source.relative_to(installed_dbc) for source in inputs]
            dbccompiler.write_module(dbccompiler.compile_firmware_module(tuple(sources)), target)
            _readable(target)
            print(f"wrote {target}")
        return 0
    if args.tree:
        raise KeidriveError("--tree goes with --firmware")
    if not args.dbc:
        raise KeidriveError("no DBC file given")
    if args.output is None:
        raise KeidriveError("no output file given (-o OUT.py)")
    if args.output.is_dir():
        raise KeidriveError(f"-o {args.output}: is a folder; give the module's file name (-o {args.output / 'OUT.py'})")
    max_filters = dbccompiler.DEFAULT_MAX_FILTERS if args.hw_filters is None else args.hw_filters
    if max_filters < 1:
        raise KeidriveError("--hw-filters must be at least 1")
    names = [name for name in args.messages.split(",") if name] if args.messages is not None else None
    text = dbccompiler.compile_dbc(args.dbc, args.node, names, max_filters=max_filters, roles_path=args.roles)
    dbccompiler.write_module(text, args.output)
    _readable(args.output)
    from ..dbccompiler.budget import over_budget

    too_big = over_budget(text, str(args.output))
    if too_big:
        print(f"keidrive: warning: {too_big}", file=sys.stderr)
    return 0


def _is_checkout(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "dbc").is_dir() and (
        folder / "firmware" / "keifw" / "vehicles").is_dir()


def _checkout(tree: Path | None) -> Path:
    """The source checkout whose firmware/ to regenerate: --tree, else the one
    around the working directory, else the one keidrive runs from (an
    editable install). A wheel's copy under site-packages is never it: the
    next install would replace it, and the checkout would stay stale."""
    if tree is not None:
        if not _is_checkout(tree):
            raise KeidriveError(f"--tree {tree} is not a keidrive checkout (pyproject.toml, dbc/, firmware/keifw/vehicles/)")
        return tree.resolve()
    for folder in (Path.cwd(), *Path.cwd().parents):
        if _is_checkout(folder):
            return folder
    installed = paths.firmware_dir().parent
    if _is_checkout(installed):
        return installed
    raise KeidriveError(
        f"no keidrive checkout at or above {Path.cwd()}; it would write into {paths.firmware_dir()}, the copy "
        "installed as package data, which your checkout never sees: run it in the checkout, pass --tree "
        "CHECKOUT, or develop with pip install -e \".[test]\""
    )


def _readable(path: Path) -> None:
    """Generated sources are read by other users and tools: the mode a plain
    open() would give under the umask, not the temporary file's 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def add_subparser(subparsers) -> None:
    parser = subparsers.add_parser("dbc", help="DBC tools", description="DBC tools.")
    commands = parser.add_subparsers(title="commands", dest="dbc_command", metavar="COMMAND")
    commands.required = True
    compile_parser = commands.add_parser(
        "compile",
        help="compile DBC files into a MicroPython decoder/encoder module",
        description=(
            "Compile DBC files into one MicroPython module (also importable by CPython) that imports the "
            "shared runtime keifw/dbcrt.py. "
            "With --node: the messages NODE receives a signal of are decoded, those it sends also get "
            "encoders. Without --node: every message is decoded and encodable."
        ),
    )
    compile_parser.add_argument("dbc", nargs="*", type=Path, metavar="DBC", help="input DBC files")
    compile_parser.add_argument("-o", "--output", type=Path, metavar="OUT.py", help="generated module")
    compile_parser.add_argument("--node", metavar="NAME", help="the node the module is for (e.g. KEIDRIVE)")
    compile_parser.add_argument("--messages", metavar="NAME,...", help="only these messages")
    compile_parser.add_argument(
        "--roles", type=Path, metavar="ROLES.toml",
        help="a roles file ([roles] role = \"MESSAGE.Signal\", [units], [checksum]): only the messages "
             "its roles name are compiled (with --node, also those NODE sends)",
    )
    compile_parser.add_argument(
        "--hw-filters", type=int, metavar="N",
        help="hardware acceptance filters for CAN_FILTERS (the board's machine.CAN.filters_max; default 8)",
    )
    compile_parser.add_argument(
        "--firmware", action="store_true",
        help="regenerate firmware/keifw/vehicles/*.py from dbc/ (node KEIDRIVE) of the checkout around the "
        "working directory",
    )
    compile_parser.add_argument(
        "--tree", type=Path, metavar="CHECKOUT", help="with --firmware: the checkout to regenerate",
    )
    compile_parser.set_defaults(func=_compile)
