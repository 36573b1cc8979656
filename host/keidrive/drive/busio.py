"""Opening any python-can bus from ``INTERFACE:CHANNEL[@BITRATE]`` and playing
frames onto it at a recorded pace."""

import can

from ..errors import KeidriveError
from .pacing import Pacer


def parse_bus(spec: str) -> tuple[str, str, int | None]:
    """(interface, channel, bitrate or None) of ``INTERFACE:CHANNEL[@BITRATE]``.

    The bitrate is the last ``@`` part, so a channel that carries its own
    (slcan's serial speed, ``ttyACM0@115200``) takes both:
    ``slcan:/dev/ttyACM0@115200@500000``.
    """
    interface, sep, channel = spec.partition(":")
    if not sep or not interface or not channel:
        raise KeidriveError(
            f"bad bus {spec!r}: expected INTERFACE:CHANNEL[@BITRATE], e.g. keidrive:sim0 or socketcan:vcan0@500000"
        )
    bitrate = None
    if "@" in channel:
        channel, _, text = channel.rpartition("@")
        if not text.isdigit() or int(text) <= 0 or not channel:
            raise KeidriveError(f"bad bus {spec!r}: the bitrate after @ must be a positive integer (bit/s), e.g. @500000")
        bitrate = int(text)
    return interface, channel, bitrate


def open_bus(spec: str, **kwargs) -> can.BusABC:
    """A python-can bus from ``INTERFACE:CHANNEL[@BITRATE]`` (``keidrive:sim0``,
    ``socketcan:vcan0``, ``slcan:/dev/ttyACM0@500000``...); one clear error if
    it cannot be opened."""
    interface, channel, bitrate = parse_bus(spec)
    if bitrate is not None:
        kwargs["bitrate"] = bitrate
    try:
        return can.Bus(interface=interface, channel=channel, **kwargs)
    except (can.CanError, OSError, ValueError, ImportError, NotImplementedError) as error:
        raise KeidriveError(f"cannot open bus {spec}: {error}") from None


def play(bus: can.BusABC, messages, speed: float | None = 1.0, on_frame=None) -> dict:
    """Send ``messages`` on ``bus``, each at its timestamp's due time
    (``speed`` times the recorded pace; ``None``: as fast as possible).

    Returns the pace's timing error (see ``Pacer.timing_error``) with the
    frame count. ``on_frame(count)`` is called every 1000 frames (progress).
    A keidrive virtual bus channel is claimed first: one drive per channel.
    """
    claim = getattr(bus, "claim", None)  # a keidrive channel's: its refusal is a one-line KeidriveError
    if claim is not None:
        claim()
    pacer = Pacer(speed)
    count = 0
    for msg in messages:
        pacer.wait(msg.timestamp)
        try:
            bus.send(msg)
        except can.CanError as error:
            raise KeidriveError(f"cannot send on {bus.channel_info}: {error}") from None
        count += 1
        if on_frame is not None and count % 1000 == 0:
            on_frame(count)
    error = pacer.timing_error()
    error["frames"] = count
    return error
