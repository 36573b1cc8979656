"""keidrive config get|set: the device config, validated before it is written."""


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser(
        "config", help="read or change the device config (/config.json) on a board or in a file",
        description="Read or change the device config. Values are checked against the firmware's own schema "
                    "(firmware/keifw/config.py) before anything is written; only the config file is touched, "
                    "through a staging name and a rename. The firmware reads it at boot; the board is soft reset "
                    "afterwards (unless --no-reset) so it runs again with the new config.")
    actions = p.add_subparsers(dest="action", metavar="get|set|keys")
    actions.required = True
    get = actions.add_parser("get", help="print the config (every key, defaults marked) or one key's value")
    _target(get)
    get.add_argument("key", nargs="?", metavar="KEY")
    get.set_defaults(func=run_get)
    put = actions.add_parser("set", help="set KEY VALUE [KEY VALUE ...]")
    _target(put)
    put.add_argument("pairs", nargs="+", metavar="KEY VALUE")
    put.set_defaults(func=run_set)
    keys = actions.add_parser("keys", help="list the config keys, their defaults and allowed values")
    keys.set_defaults(func=run_keys)


def _target(p) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="PORT", help="the board's serial port")
    where.add_argument("--file", metavar="FILE", help="a local config.json (e.g. for the SIL firmware)")
    p.add_argument("--no-reset", action="store_true",
                   help="leave the board at the REPL prompt; by default it is soft reset afterwards, so the "
                        "firmware (interrupted to reach the REPL) runs again, with the new config")
    from ..board import CONFIG_DEADLINE_S
    from .options import add_deadline

    add_deadline(p, CONFIG_DEADLINE_S)


def _read_board(board):
    from ..board import deploy

    raw = board.read_file(deploy.CONFIG)
    config = deploy.parse_board_config(raw, board.port)
    if raw is not None and config is None:
        print(f"note: {deploy.CONFIG} on the board is not a JSON object; the firmware runs on defaults")
    return config or {}


def run_get(args) -> int:
    import json

    from ..board import settings
    from ..errors import KeidriveError
    from ..fwconfig import schema_module

    if args.key is not None and args.key not in schema_module().SCHEMA:
        raise KeidriveError(f"unknown config key {args.key!r}")
    if args.file:
        config = settings.read_local(args.file)
    else:
        from ..board.client import Board

        board = Board(args.port, soft_reset=False, deadline=args.deadline)
        try:
            config = _read_board(board)
        finally:
            board.close(leave="friendly" if args.no_reset else "reset")
    if args.key is not None:
        effective, _ = schema_module().validate(config)
        print(json.dumps(schema_module().masked(args.key, effective[args.key])))
    else:
        print("\n".join(settings.describe(config)))
    return 0


def run_set(args) -> int:
    from ..board import deploy, settings
    from ..errors import KeidriveError
    from ..fwconfig import schema_module

    masked = schema_module().masked
    if len(args.pairs) % 2:
        raise KeidriveError("config set wants KEY VALUE pairs")
    changes = {}
    for key, text in zip(args.pairs[::2], args.pairs[1::2]):
        if key == "vehicle":
            text = settings.resolve_vehicle(text)
        changes[key] = settings.parse_value(key, text)
    if args.file:
        settings.check_writable(args.file)
        config = deploy.merged_config(settings.read_local(args.file, missing_ok=True), changes, args.file)
        settings.write_local(args.file, config)
        print(f"{args.file}: " + ", ".join(f"{k}={masked(k, v)!r}" for k, v in changes.items()))
        return 0
    from ..board.client import Board

    board = Board(args.port, soft_reset=False, deadline=args.deadline)
    leave = "friendly" if args.no_reset else "reset"
    try:
        current = _read_board(board)
        config = deploy.merged_config(current, changes)
        if config != current:
            deploy.write_config(board, config)
        for key, value in changes.items():
            before = current.get(key, "(default)")
            shown, was = masked(key, value), masked(key, before) if key in current else before
            print(f"{key}: {was!r} -> {shown!r}" if before != value else f"{key}: {shown!r} (unchanged)")
        if args.no_reset:
            print("takes effect at the next soft reset (Ctrl-D at the REPL, or keidrive monitor --reset)")
        else:
            print("soft reset: the firmware restarts with the new config")
    finally:
        board.close(leave=leave)
    return 0


def run_keys(args) -> int:
    import json

    from ..fwconfig import schema_module

    for key, (kind, default, rule, text) in schema_module().SCHEMA.items():
        if kind == "str":
            allowed = "|".join(rule)
        elif kind == "text":
            allowed = f"null|{schema_module().TEXT_FORMS[rule[1]]} (<= {rule[0]})"
        elif kind == "bool":
            allowed = "true|false"
        else:
            allowed = f"{rule[0]}..{rule[1]}" + ("|null" if len(rule) == 3 else "")
        print(f"{key:20} {allowed:40} default {json.dumps(default):10} {text}")
    return 0
