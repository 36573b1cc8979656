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


def with_gnss(pieces, route, receiver, span_s: tuple[float, float]):
    """The simulator's frame records with the GNSS module's UART records
    among them, in time order, a piece at a time: ``pieces`` of (the plot
    trace of a piece, every 10 ms step; its frame records) of a drive whose
    steps end from ``span_s[0]`` to ``span_s[1]`` (``sim.physics.step_span``).
    Put together, the pieces are the whole drive's records and sentences
    merged (``nmea.merge``)."""
    from .nmea import interleave, uart_records

    module = receiver.stream(route, *span_s)

    def due(trace, frames):
        # later frames come at or after this piece's last; later sentences
        # after the epochs still to come, all past this piece's last step
        last_frame = int(frames["timestamp_us"][-1]) if len(frames) else None
        last_step = round(float(trace["time_s"][-1]) * 1e6)
        return last_step if last_frame is None else min(last_frame, last_step)

    return interleave((frames, uart_records(module.add(trace["time_s"], trace["speed_kmh"])), due(trace, frames))
                      for trace, frames in pieces)
