"""A drive along a route: the cycle repeated over the route's length, and
the GNSS module's NMEA beside the simulator's CAN frames (keidrive.gps.nmea)."""

from __future__ import annotations

import datetime as _dt


def prepare(route, cycle, start: _dt.datetime | None = None):
    """(the route loaded, the cycle repeated until it covers it); ``start``:
    when the drive starts (UTC; default: the route's own time), which decides
    the rules in force."""
    from .route import load_route, repeat_cycle

    route = load_route(route)
    if start is not None:
        route.start = start.replace(tzinfo=_dt.UTC) if start.tzinfo is None else start
    return route, repeat_cycle(cycle, route)


def with_gnss(records, result, route, receiver):
    """The simulator's frame records with the GNSS module's UART records
    among them, in time order."""
    from .nmea import merge, uart_records

    trace = result.trace
    timed = receiver.sentences(route, trace["time_s"], trace["speed_kmh"])
    return merge(records, uart_records(timed))
