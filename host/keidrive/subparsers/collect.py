"""keidrive collect: the devices' uplink messages from an MQTT broker into DuckDB."""

from __future__ import annotations


def add_subparser(subparsers) -> None:
    from ..collect.store import DEFAULT_DB

    parser = subparsers.add_parser(
        "collect",
        help="subscribe to the devices' MQTT uplink and store trips, warnings and statuses in DuckDB",
        description=(
            "Subscribe to keidrive/+/# and store what the devices send in DuckDB (tables devices, trips, "
            "warnings, status, events), each message once by (device, boot, seq); a message that fails the "
            "schema (docs/uplink.md) is logged in one line and dropped. Without --broker an embedded broker "
            "(amqtt) listens on loopback, so `keidrive run --uplink` publishes to it. Runs until interrupted."
        ),
    )
    parser.add_argument("--broker", metavar="mqtt(s)://HOST:PORT",
                        help="a broker of your own (mosquitto); default: the embedded one on --listen")
    parser.add_argument("--listen", default="127.0.0.1:1883", metavar="HOST:PORT",
                        help="where the embedded broker listens (default: 127.0.0.1:1883)")
    parser.add_argument("--db", default=DEFAULT_DB, metavar="FILE.duckdb", help=f"default: {DEFAULT_DB}")
    parser.add_argument("--username", metavar="USER", help="user name on --broker")
    parser.add_argument("--password-file", metavar="FILE", help="the password, first line of FILE")
    parser.add_argument("--ca", metavar="CA.pem", help="CA certificate for mqtts:// (default: the system's)")
    parser.add_argument("--client-id", default="keidrive-collect",
                        help="MQTT client id: its session keeps what arrives while it is away (default: %(default)s)")
    parser.add_argument("--idle-exit", type=float, metavar="S",
                        help="stop once nothing has arrived for S seconds (after the first message)")
    parser.add_argument("--json", action="store_true",
                        help="at the end print messages, stored, duplicates, rejected, rejected_by_reason, "
                             "devices, db as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json
    import signal
    import sys
    import time

    from rich.console import Console

    from ..collect import Broker, Collector, EmbeddedBroker
    from ..errors import KeidriveError

    embedded = None
    if args.broker is None:
        if args.username or args.password_file or args.ca:
            raise KeidriveError("--username, --password-file and --ca are for --broker (the embedded one is "
                                "anonymous, on loopback)")
        host, _, port = args.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise KeidriveError(f"--listen wants HOST:PORT, got {args.listen!r}")
        embedded = EmbeddedBroker(host, int(port)).start()
        broker = Broker.parse(embedded.url)
    else:
        broker = Broker.parse(args.broker, args.username, args.password_file, args.ca)
    console = Console(stderr=True)
    live = console.is_terminal

    def log(line):
        if live:
            console.print(" " * 100, end="\r")
        print(line, file=sys.stderr, flush=True)

    stopping = []
    previous = {sig: signal.signal(sig, lambda *_: stopping.append(True)) for sig in (signal.SIGTERM, signal.SIGINT)}
    collector = None
    try:
        collector = Collector(args.db, broker, client_id=args.client_id, log=log).start()
        log(f"collect: subscribed to keidrive/+/# on {broker.url}"
            f"{' (embedded broker)' if embedded else ''}; storing into {args.db}")
        stats = collector.stats
        shown = time.monotonic()
        window = [(time.monotonic(), 0)]
        while not stopping:  # SIGINT and SIGTERM stop it here, between batches
            collector.process(0.2)
            now = time.monotonic()
            if args.idle_exit is not None and stats.last_at is not None and now - stats.last_at > args.idle_exit:
                break
            if live and now - shown >= 0.5:
                shown = now
                window = [w for w in window if now - w[0] < 5] + [(now, stats.messages)]
                rate = (window[-1][1] - window[0][1]) / max(now - window[0][0], 1e-6)
                last = f"last {stats.last_device} {now - stats.last_at:.0f} s ago" if stats.last_at else "nothing yet"
                console.print(f"collect: {stats.messages} messages ({rate:.1f}/s), {len(stats.devices)} devices, "
                              f"{stats.rejected} rejected, {stats.duplicates} duplicates; {last}",
                              end="\r", highlight=False)
        while collector.process(0.05):  # what has arrived is stored before the end
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if collector is not None:
            collector.close()
        if embedded is not None:
            embedded.stop()
    summary = {**collector.stats.as_dict(), "db": str(args.db)}
    if live:
        console.print(" " * 100, end="\r")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"collect: {summary['messages']} messages from {len(summary['devices'])} devices: {summary['stored']} "
              f"stored, {summary['duplicates']} duplicates, {summary['rejected']} rejected; {args.db}")
    return 0
