"""The flags run, replay, simulate and fleet share: spelled, defaulted and
paired once here, so a flag means the same wherever it is taken."""

from __future__ import annotations

from ..drive.spec import DEFAULT_CYCLE, DEFAULT_PROFILE, DEFAULT_RUNTIME, DEFAULT_VEHICLE, shared_bus
from ..errors import KeidriveError

BUS_METAVAR = "INTERFACE:CHANNEL[@BITRATE]"
RUNTIME_METAVAR = "micropython|cpython|unix32|qemu|qemu-mpy|rp2040|PATH"


def add_drive(parser) -> None:
    """--vehicle and --cycle, with keidrive run's defaults."""
    parser.add_argument("--vehicle", default=DEFAULT_VEHICLE, metavar="NAME|FILE.toml",
                        help=f"vehicle preset (keidrive vehicles) or TOML file (default: {DEFAULT_VEHICLE})")
    parser.add_argument("--cycle", default=DEFAULT_CYCLE, metavar="NAME|FILE.csv",
                        help=f"drive cycle (keidrive cycles) or CSV file (default: {DEFAULT_CYCLE})")


def add_profile(parser) -> None:
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"speed-warning profile (keidrive profiles; default: {DEFAULT_PROFILE})")


def add_bus(parser, what: str) -> None:
    parser.add_argument(
        "--bus", metavar=BUS_METAVAR,
        help=f"{what}: keidrive:NAME (others attach with -i keidrive -c NAME), socketcan:vcan0, any python-can "
             "interface; @BITRATE is python-can's -b (keidrive:NAME@125000 paces the virtual bus)",
    )


def add_pace(parser, *, speed: bool = True) -> None:
    """--fast, --realtime and (where a pace other than recorded makes sense) --speed N, one at a time."""
    pace = parser.add_mutually_exclusive_group()
    if speed:
        pace.add_argument("--speed", type=float, metavar="N", help="N times the recorded pace")
    pace.add_argument("--realtime", action="store_true", help="recorded pace")
    pace.add_argument(
        "--fast", action="store_true",
        help="as fast as it goes (the default where keidrive runs the firmware on keidrive's bus, in lockstep "
             "on the frames' time; recorded pace is the default, and the only pace, everywhere else)",
    )


def pace_of(args, *, firmware: bool = True) -> float | None:
    """The pace the flags ask for (None: as fast as it goes). Into a firmware
    keidrive runs, that is the default; frames that go to no firmware of
    keidrive's (simulate --bus, replay --no-firmware) default to recorded pace."""
    speed = getattr(args, "speed", None)
    if speed is not None and speed <= 0:
        raise KeidriveError(f"{speed:g}: must be positive (1: recorded pace)", option="speed")
    if args.fast:
        if firmware and shared_bus(args.bus):
            raise KeidriveError(f"with the firmware on {args.bus}: it sees the bus's receive times, so only "
                                "recorded pace works there", option="fast")
        return None
    if args.realtime:
        return 1.0
    if speed is not None:
        return speed
    return None if firmware else 1.0


def add_dbc(parser) -> None:
    parser.add_argument(
        "--dbc", metavar="NAME|FILE.dbc",
        help="a bundled vehicle DBC (kei_turbo_660, kei_hybrid_660, kei_ev) or your car's DBC file with --roles",
    )
    parser.add_argument("--roles", metavar="ROLES.toml",
                        help="the roles file for a --dbc FILE: the firmware runs that DBC compiled with it")


def add_runtime(parser) -> None:
    parser.add_argument(
        "--runtime", default=DEFAULT_RUNTIME, metavar=RUNTIME_METAVAR,
        help="where the firmware runs: the MicroPython unix port (default), CPython, the 32-bit targets "
             "(keidrive target build: unix32, the qemu Cortex-M3 board with the firmware frozen or as .mpy, "
             "rp2040: an emulated Raspberry Pi Pico, the frames through its MCP2515), or your micropython build",
    )


def add_plot(parser, default: str | None) -> None:
    """--plot FILE and --no-plot; ``default``: the file written when neither is given (None: none)."""
    plot = parser.add_mutually_exclusive_group()
    when = f" (default: {default}; with --json only when given)" if default else " (only when given)"
    plot.add_argument("--plot", metavar="FILE.png", help=f"plot path, .png .pdf or .svg{when}")
    plot.add_argument("--no-plot", action="store_true", help="write no plot")


def plot_path(args, default: str) -> str | None:
    """--plot's path; without it ``default``, except with --json (a
    machine's report writes no file it was not asked for) or --no-plot."""
    if args.plot is not None:
        return args.plot
    if args.no_plot or args.json:
        return None
    return default


def add_json(parser, keys: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print the report as JSON: {keys}")


def add_deadline(parser, default: float) -> None:
    parser.add_argument(
        "--deadline", type=float, default=default, metavar="SECONDS",
        help=f"give up on the board after this long in all, with one line saying so (default {default:g})",
    )


def add_uplink(parser, *, board: bool = False) -> None:
    """--uplink and its companions (docs/uplink.md); a board takes the URL alone."""
    from ..uplink import DEFAULT_URL

    group = parser.add_argument_group("uplink (docs/uplink.md)")
    if board:
        group.add_argument("--uplink", metavar="mqtt(s)://HOST:PORT",
                           help="the board publishes its trips and events to this broker (mqtt_url in its "
                                "/config.json; its network is this machine's)")
        return
    group.add_argument("--uplink", nargs="?", const=DEFAULT_URL, metavar="mqtt(s)://[USER@]HOST:PORT",
                       help=f"publish trips, events and statuses over MQTT while driving (default {DEFAULT_URL}: "
                            "a `keidrive collect` on this machine)")
    group.add_argument("--device-id", metavar="ID",
                       help="the device id in the topics (default: sil-<vehicle>-<6 random hex digits>)")
    group.add_argument("--uplink-password-file", metavar="FILE", help="the MQTT password, first line of FILE")
    group.add_argument("--uplink-ca", metavar="CA.pem", help="CA certificate the broker's must chain to (mqtts://)")


def uplink_keys(args, vehicle: str) -> dict:
    """The firmware config keys of the --uplink flags ({} without --uplink)."""
    from ..uplink import firmware_keys

    if args.uplink is None:
        for name in ("device_id", "uplink_password_file", "uplink_ca"):
            if getattr(args, name) is not None:
                raise KeidriveError("goes with {uplink}", option=name, mentions=("uplink",))
        return {}
    return firmware_keys(args.uplink, vehicle, device_id=args.device_id, password_file=args.uplink_password_file,
                         ca=args.uplink_ca)
