"""The ``keidrive`` command: one small module per subcommand in ``subparsers``."""

import argparse
import importlib
import os
import sys

from . import __version__, stopping
from .errors import KeidriveError

# Order is the order of `keidrive --help`.
SUBCOMMANDS = (
    "run",
    "replay",
    "fleet",
    "collect",
    "dbc",
    "simulate",
    "calibrate",
    "cycles",
    "vehicles",
    "profiles",
    "geo",
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
    args = parser.parse_args(_joined(sys.argv[1:] if argv is None else list(argv)))
    stopping.install()
    try:
        status = args.func(args)
    except KeidriveError as error:
        print(f"keidrive: error: {error.said(_flag_namer(args.func))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as stop:
        # Ctrl-C, SIGTERM, SIGHUP or a run's own reason: every ``finally`` on
        # the way here has cleaned up (keidrive.stopping)
        why, status = (stop.why, stop.status) if isinstance(stop, stopping.Stopped) else ("interrupted", 130)
        print(f"keidrive: {why}", file=sys.stderr)
        sys.exit(status)
    except BrokenPipeError:
        # `keidrive ... | head` closed the pipe: not an error worth a traceback.
        stopping.quiet_stdout()
        sys.exit(0)
    sys.exit(status or 0)


def _joined(argv: list[str]) -> list[str]:
    """``fleet report ...`` as the one subcommand ``fleet report``, so it has
    a parser, usage and ``--help`` of its own beside ``fleet``'s."""
    if argv[:2] == ["fleet", "report"]:
        return ["fleet report", *argv[2:]]
    return argv


def _flag_namer(func):
    """How errors name a setting in the command ``func`` runs: as its flag
    (``min_explained`` -> ``--min-explained``; a command's FLAGS say where
    the flag's name is another)."""
    flags = getattr(sys.modules[func.__module__], "FLAGS", {})
    return lambda name: flags.get(name, "--" + name.replace("_", "-"))
