"""A drive along a route: the options of ``keidrive run --route``, the cycle
repeated over the route's length, and the GNSS module's NMEA beside the
simulator's CAN frames (keidrive.gps.nmea)."""

from __future__ import annotations

import datetime as _dt

from ..errors import KeidriveError


def add_arguments(parser) -> None:
    group = parser.add_argument_group("GPS (with --route)")
    group.add_argument(
        "--route", metavar="NAME|FILE.gpx|FILE.csv",
        help="drive the cycle along this route (repeated until it covers it) with a GNSS module on the board's "
             "GPS UART: the firmware picks each state's kei rules (bundled: keidrive geo routes)",
    )
    group.add_argument("--gps-rate", type=int, default=1, metavar="HZ", help="fixes per second, 1 or 10 (default 1)")
    group.add_argument("--gps-noise", type=float, default=2.5, metavar="M",
                       help="position noise, metres per axis (default 2.5)")
    group.add_argument("--gps-outage", action="append", default=[], metavar="START:SECONDS",
                       help="no fix from START s for SECONDS (a tunnel); repeatable")
    group.add_argument("--gps-jump", action="append", default=[], metavar="START:SECONDS:METRES[:BEARING]",
                       help="the position off by METRES (towards BEARING degrees, default right of the course) from "
                            "START s for SECONDS (multipath); repeatable")
    group.add_argument("--start", metavar="YYYY-MM-DDTHH:MM", help="when the drive starts, UTC (default: the route's "
                       "own time): the GPS date decides which rules are in force")


def _spans(texts, parts: tuple, option: str) -> list[tuple]:
    spans = []
    for text in texts:
        try:
            values = tuple(float(x) for x in text.split(":"))
        except ValueError:
            values = ()
        if len(values) not in parts or values[0] < 0 or values[1] <= 0:
            form = "START:SECONDS" + (":METRES[:BEARING]" if len(parts) > 1 else "")
            raise KeidriveError(f"{option} {text}: expected {form} with SECONDS > 0")
        spans.append(values)
    return spans


def prepare(args, cycle):
    """(route, the cycle repeated over it, the GNSS receiver); bad options fail here."""
    from .nmea import Receiver
    from .route import load_route, repeat_cycle

    route = load_route(args.route)
    if args.start:
        try:
            start = _dt.datetime.fromisoformat(args.start)
        except ValueError:
            raise KeidriveError(f"--start {args.start}: not a date and time (YYYY-MM-DDTHH:MM)") from None
        route.start = start.replace(tzinfo=_dt.UTC) if start.tzinfo is None else start
    receiver = Receiver(rate_hz=args.gps_rate, noise_m=args.gps_noise,
                        outages=_spans(args.gps_outage, (2,), "--gps-outage"),
                        jumps=_spans(args.gps_jump, (3, 4), "--gps-jump"))
    return route, repeat_cycle(cycle, route), receiver


def with_gnss(records, result, route, receiver):
    """The simulator's frame records with the GNSS module's UART records
    among them, in time order."""
    from .nmea import merge, uart_records

    trace = result.trace
    timed = receiver.sentences(route, trace["time_s"], trace["speed_kmh"])
    return merge(records, uart_records(timed))
