"""keidrive flash: base MicroPython image (optional), the application, the config, reset."""

from pathlib import Path


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser(
        "flash", help="put the firmware on a dev board: base image (optional), application, config, reset",
        description="Deploy the keidrive firmware to a dev board. Optionally writes the base MicroPython image "
                    "first (esptool for the ESP32 family, the UF2 drive for the RP2040, dfu-util for the STM32). "
                    "Then precompiles firmware/ with mpy-cross for the architecture the board reports (refusing "
                    "an .mpy version or architecture mismatch), copies only changed files into a staging folder "
                    "and switches it in by renames, writes /config.json and soft resets the board.")
    p.add_argument("--port", metavar="PORT",
                   help="the board's serial port (e.g. /dev/ttyUSB0); not needed for --dry-run")
    p.add_argument("--board", required=True, choices=("esp32", "esp32s3", "rp2040", "stm32"),
                   help="the board family")
    p.add_argument("--base-firmware", metavar="FILE",
                   help="MicroPython image to write first (.bin for ESP32/ESP32-S3, .uf2 for RP2040, .dfu for STM32)")
    p.add_argument("--uf2-drive", metavar="DIR", help="RP2040: where the RPI-RP2 drive is mounted")
    p.add_argument("--vehicle", metavar="V",
                   help="vehicle DBC decoder: a module under keifw/vehicles (kei_turbo_660) or a preset (nbox-turbo)")
    p.add_argument("--dbc", type=Path, metavar="FILE.dbc",
                   help="your car's DBC (with --roles): deploy it compiled with the roles file as the vehicle module")
    p.add_argument("--roles", type=Path, metavar="ROLES.toml", help="the roles file for --dbc")
    p.add_argument("--profile", metavar="P", help="speed profile (jp-expressway, us-interstate, ...)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the inputs and print the plan without touching the board (none need be attached)")
    p.add_argument("--json", action="store_true",
                   help="with --dry-run: the plan as JSON {board, arch, config, files}; config is exactly what "
                        "/config.json will hold on a board that has none")
    from ..board import FLASH_DEADLINE_S
    from .options import add_deadline

    add_deadline(p, FLASH_DEADLINE_S)
    p.set_defaults(func=run)


def run(args) -> int:
    import tempfile

    from ..drive import byodbc
    from ..errors import KeidriveError

    if args.dbc is None and args.roles is None:
        return _flash(args, None, None)
    if args.dbc is None or args.roles is None:
        raise KeidriveError("--dbc and --roles go together")
    if args.vehicle:
        raise KeidriveError("--vehicle or --dbc with --roles: the board runs one vehicle module")
    if not args.dbc.is_file():
        raise KeidriveError(f"{args.dbc}: no such file")
    with tempfile.TemporaryDirectory(prefix="keidrive-dbc-") as folder:
        tree, name, _ = byodbc.build_tree(args.dbc, args.roles, Path(folder))
        return _flash(args, tree, name)


def _flash(args, tree, byo_vehicle) -> int:
    """The flash from ``tree`` (None: the bundled firmware); ``byo_vehicle`` the
    vehicle module compiled into that tree from --dbc and --roles, for the config."""
    from ..board import deploy, image, settings
    from ..board.boards import board_kind

    kind = board_kind(args.board)
    say = print

    # Everything that can be checked without the board, before touching it
    changes = {}
    if args.vehicle:
        changes["vehicle"] = settings.parse_value("vehicle", settings.resolve_vehicle(args.vehicle))
    if args.profile:
        from ..fwconfig import require_profile

        changes["profile"] = require_profile(args.profile)
    deploy.merged_config({}, changes)
    if args.base_firmware:
        image.check_image(args.base_firmware, kind)
    from ..errors import KeidriveError

    if args.json and not args.dry_run:
        raise KeidriveError("flash --json prints a plan: use it with --dry-run")
    if args.dry_run:
        return _dry_run(args, kind, changes, tree, byo_vehicle)
    if not args.port:
        raise KeidriveError("flash needs --port (the board's serial port), or --dry-run for the plan alone")

    from ..board.client import Board, BoardError

    if args.base_firmware:
        say(f"base image: {args.base_firmware}")
        image.flash_base(kind, args.port, args.base_firmware, say, uf2_drive=args.uf2_drive)
    board = Board(args.port, deadline=args.deadline)
    step = "reading the board's identity"
    try:
        identity = board.identity()
        say(f"board: {identity.describe()}")
        arch, note = deploy.check_identity(identity, kind, args.port)
        files = deploy.build_application(arch, tree=tree)
        step = "preparing the board"
        board.exec(deploy.BOARD_HELPERS)
        deploy.recover(board, say)
        current = deploy.parse_board_config(board.read_file(deploy.CONFIG), args.port) or {}
        config = _config(current, _wanted(kind, current, changes), byo_vehicle)
        plan = deploy.Plan(kind=kind, arch=arch, arch_note=note, files=files, config=config)
        step = "comparing with the board's manifest"
        deploy.compare(board, plan)
        say("plan:")
        say(f"  compile {sum(f.path.endswith('.mpy') for f in files)} modules with mpy-cross -march={arch}: {note}")
        say(f"  application: {len(files)} files, {len(plan.upload)} to copy, {len(plan.unchanged)} unchanged")
        _say_config(say, current, config)
        say("  reset: soft reset, main.py starts")
        step = "copying the application (the old one stays until the switch)"
        deploy.deploy(board, plan, say)
        step = "writing the config"
        if config != current:
            deploy.write_config(board, config)
            say(f"config written: {deploy.CONFIG}")
        listing = deploy.board_listing(board)
    except BoardError as error:
        board.close()
        raise KeidriveError(f"flash failed while {step}: {error}") from None
    except BaseException:
        board.close()
        raise
    board.close(leave="reset")
    say(f"done: {' '.join(listing)} on {args.port}; the board is running main.py")
    return 0


def _say_config(say, current: dict, config: dict) -> None:
    changed = {k: v for k, v in config.items() if current.get(k, object()) != v}
    if not changed:
        say(f"  config: unchanged ({len(current)} keys)")
        return
    from ..fwconfig import schema_module

    masked = schema_module().masked  # a secret is never shown
    text = ", ".join(f"{k}={masked(k, v)!r}" + (f" (was {masked(k, current[k])!r})" if k in current else "")
                     for k, v in changed.items())
    say(f"  config /config.json: {text}")


def _wanted(kind, current: dict, changes: dict) -> dict:
    """The changes a flash makes: the board's CAN wiring where the config has none, then the options."""
    wanted = {k: v for k, v in kind.defaults().items() if k not in current}
    wanted.update(changes)
    return wanted


def _config(current: dict, wanted: dict, byo_vehicle: str | None) -> dict:
    """The config the flash writes: ``current`` with ``wanted``, validated; a vehicle
    module compiled from --dbc is known to the deployed tree's schema only, so it is
    set past the bundled schema's check (replacing the board's vehicle)."""
    from ..board import deploy

    if byo_vehicle is None:
        return deploy.merged_config(current, wanted)
    kept = {k: v for k, v in current.items() if k != "vehicle"}
    return {**deploy.merged_config(kept, wanted), "vehicle": byo_vehicle}


def _dry_run(args, kind, changes, tree, byo_vehicle) -> int:
    import json

    from ..board import deploy, image

    arch = kind.archs[0]
    files = deploy.build_application(arch, tree=tree)
    config = _config({}, _wanted(kind, {}, changes), byo_vehicle)
    if args.json:
        print(json.dumps({
            "board": kind.name,
            "arch": arch,
            "config": config,
            "files": [{"path": f.path, "bytes": len(f.data), "sha256": f.sha} for f in files],
        }, indent=1))
        return 0
    modules = [f for f in files if f.path.endswith(".mpy")]
    where = f" on {args.port}" if args.port else ""
    print(f"plan for a {kind.name}{where} (dry run: no board is contacted)")
    step = 1
    if args.base_firmware:
        print(f"{step}. base image {args.base_firmware}: " + " ".join(image.flash_command(kind, args.port or "PORT",
                                                                                          args.base_firmware)))
        step += 1
    print(f"{step}. connect: interrupt the running program, raw REPL; read sys.platform (must be "
          f"{kind.platform!r}), sys.implementation._mpy (must be .mpy v%d.%d, this mpy-cross) and the native "
          f"architecture" % deploy.mpy_cross_version())
    print(f"{step + 1}. compile {len(modules)} modules with mpy-cross -march={arch} (a {kind.name}; a keidrive "
          f"virtual board gets its engine's architecture instead); main.py stays source:")
    for f in files:
        print(f"     {f.path:42} {len(f.data):7} bytes  sha256 {f.sha[:12]}")
    print(f"{step + 2}. copy into {deploy.STAGE}, skipping files whose hash matches {deploy.MANIFEST} on the board; "
          f"verify; switch in by renames ({', '.join(sorted({f.path.split('/')[0] for f in files}))})")
    config_text = ", ".join(f"{k}={v!r}" for k, v in config.items())
    print(f"{step + 3}. config {deploy.CONFIG} (a board without one; keys it already has are kept unless given "
          f"here): {config_text} (validated with firmware/keifw/config.py)")
    print(f"{step + 4}. soft reset: main.py starts")
    return 0
