"""keidrive monitor: the live dashboard of a board's telemetry."""

import sys


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser(
        "monitor", help="live dashboard of a board's telemetry (speed, km/L, eco, warnings, bus)",
        description="Show the telemetry JSON lines of a board (or of the SIL firmware on stdin) as a live "
                    "dashboard. Survives the board resetting: a soft reboot or the port vanishing for a while "
                    "is counted and the dashboard goes on.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--port", metavar="PORT", help="the board's serial port")
    source.add_argument("--stdin", action="store_true",
                        help="read telemetry lines from stdin (e.g. the SIL firmware: keidrive run --realtime "
                             "--telemetry - | keidrive monitor --stdin)")
    p.add_argument("--log", metavar="FILE", help="append every telemetry line, raw, to FILE")
    p.add_argument("--reset", action="store_true",
                   help="soft reset the board first so main.py (re)starts (e.g. after mpremote left it at the "
                        "REPL prompt)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--plain", action="store_true",
                   help="one text line per status instead of the dashboard (default when stdout is not a terminal)")
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    from ..board import monitor
    from ..errors import KeidriveError

    if args.duration is not None and args.duration <= 0:
        raise KeidriveError("--duration must be positive")
    plain = args.plain or not sys.stdout.isatty()
    deadline = None if args.duration is None else time.monotonic() + args.duration
    state = monitor.State()
    if args.stdin:
        state.connected = True
        lines = monitor.stdin_lines(deadline)
        name = "stdin"
        source = None
    else:
        source = monitor.Source(args.port, reset=args.reset, state=state)
        lines = source.lines(deadline)
        name = args.port
    try:
        monitor.run(lines, name, args.log, plain, state)
    except KeyboardInterrupt:
        pass
    finally:
        if source is not None:
            source.close()
    if plain:
        print(f"monitor: {state.statuses} status lines, {len(state.warnings)} warning events, "
              f"{state.resets} resets", file=sys.stderr)
    return 0
