"""The ``keidrive`` command: one small module per subcommand in ``subparsers``."""

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import KeidriveError

# Order is the order of `keidrive --help`.
SUBCOMMANDS = (
    "run",
    "replay",
    "fleet",
    "dbc",
    "simulate",
    "calibrate",
    "cycles",
    "vehicles",
    "profiles",
    "bench",
    "flash",
    "monitor",
    "config",
    "board",
    "target",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keidrive",
        description="Eco-drive and highway-speed telematics for kei cars.",
    )
    parser.add_argument("--version", action="version", version=f"keidrive {__version__}")
    subparsers = parser.add_subparsers(title="subcommands", dest="subcommand", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f".subparsers.{name}", __package__)
        module.add_subparser(subparsers)
    return parser


def main(argv=None) -> None:
    # keidrive's numpy work is element-wise: a BLAS thread pool only costs its start-up
    # (in this process and the bus hubs it starts), unless the user asked for one
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except KeidriveError as error:
        print(f"keidrive: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("keidrive: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # `keidrive ... | head` closed the pipe: not an error worth a traceback.
        sys.exit(0)
    sys.exit(status or 0)
