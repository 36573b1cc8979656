"""A simulated GNSS module: the NMEA 0183 it sends for a drive along a route,
as UART records beside the CAN frames.

Like a u-blox NEO-6M/M8N at 9600 baud: per epoch RMC, VTG and GGA (talker
GN), positions to 1e-5 minute, speed in knots and km/h, at 1 Hz; at 10 Hz
the RMC of every epoch and VTG and GGA once a second (all three every
epoch would need 1,450 B/s, more than 9600 baud carries). The bytes leave
the module as the baud rate lets them: a sentence reaches the firmware when
its last byte has, and a backlog grows if the rate is too high.

What goes wrong, on request: position noise (metres, each axis, Gaussian),
outages (a tunnel: the module reports no fix, RMC V, GGA quality 0) and
multipath jumps (the position off by some metres for a while, while the
module still reports a good fix).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field

import numpy as np

from ..io import record
from ..errors import KeidriveError

KNOT_KMH = 1.852
M_PER_DEG = 6371008.8 * math.pi / 180
MODULE_LATENCY_S = 0.05  # the module sends an epoch's sentences this long after it


def checksum(body: str) -> str:
    x = 0
    for ch in body.encode("ascii"):
        x ^= ch
    return f"{x:02X}"


def sentence(body: str) -> bytes:
    """``$body*hh\\r\\n``"""
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def _latlon(lat: float, lon: float) -> tuple[str, str, str, str]:
    a, b = abs(lat), abs(lon)
    la = f"{int(a):02d}{(a - int(a)) * 60:08.5f}"
    lo = f"{int(b):03d}{(b - int(b)) * 60:08.5f}"
    return la, "N" if lat >= 0 else "S", lo, "E" if lon >= 0 else "W"


def rmc(when: _dt.datetime, lat: float | None, lon: float | None, speed_kmh: float, course: float,
        talker: str = "GN") -> bytes:
    """RMC; ``lat`` None: no fix (status V, empty fields)."""
    hhmmss = when.strftime("%H%M%S") + f".{when.microsecond // 10000:02d}"
    date = when.strftime("%d%m%y")
    if lat is None:
        return sentence(f"{talker}RMC,{hhmmss},V,,,,,,,{date},,,N")
    la, ns, lo, ew = _latlon(lat, lon)
    return sentence(f"{talker}RMC,{hhmmss},A,{la},{ns},{lo},{ew},{speed_kmh / KNOT_KMH:.3f},{course:.2f},{date},,,A")


def vtg(speed_kmh: float | None, course: float, talker: str = "GN") -> bytes:
    if speed_kmh is None:
        return sentence(f"{talker}VTG,,T,,M,,N,,K,N")
    return sentence(f"{talker}VTG,{course:.2f},T,,M,{speed_kmh / KNOT_KMH:.3f},N,{speed_kmh:.3f},K,A")


def gga(when: _dt.datetime, lat: float | None, lon: float | None, sats: int, hdop: float,
        altitude_m: float = 100.0, talker: str = "GN") -> bytes:
    hhmmss = when.strftime("%H%M%S") + f".{when.microsecond // 10000:02d}"
    if lat is None:
        return sentence(f"{talker}GGA,{hhmmss},,,,,0,{sats:02d},99.99,,,,,,")
    la, ns, lo, ew = _latlon(lat, lon)
    return sentence(f"{talker}GGA,{hhmmss},{la},{ns},{lo},{ew},1,{sats:02d},{hdop:.2f},{altitude_m:.1f},M,"
                    f"-30.0,M,,")


@dataclass
class Receiver:
    """The module's behaviour. ``outages``: (start s, seconds); ``jumps``:
    (start s, seconds, metres[, bearing degrees]), the position moved that
    far that way (default: to the right of the course)."""

    rate_hz: int = 1
    noise_m: float = 2.5
    outages: list = field(default_factory=list)
    jumps: list = field(default_factory=list)
    baud: int = 9600
    seed: int = 0
    talker: str = "GN"

    def __post_init__(self):
        if self.rate_hz not in (1, 10):
            raise KeidriveError(f"{self.rate_hz}: 1 or 10 (Hz)", option="gps_rate")
        if not (0 <= self.noise_m <= 1000 and math.isfinite(self.noise_m)):
            raise KeidriveError(f"{self.noise_m}: 0 to 1000 metres", option="gps_noise")

    def _in(self, spans, t):
        for span in spans:
            if span[0] <= t < span[0] + span[1]:
                return span
        return None

    def sentences(self, route, time_s, speed_kmh):
        """[(time s the last byte arrives, sentence bytes)] for the vehicle's
        speed trace ``speed_kmh`` at ``time_s`` laid along ``route``."""
        return self.stream(route, time_s[0], time_s[-1]).add(time_s, speed_kmh)

    def stream(self, route, first_s: float, last_s: float) -> SentenceStream:
        """The module over a trace from ``first_s`` to ``last_s`` given a
        piece at a time (``SentenceStream.add``), for a drive of any length:
        the pieces' sentences put together are ``sentences`` of the whole."""
        return SentenceStream(self, route, first_s, last_s)


class SentenceStream:
    """A GNSS module's sentences as the trace comes. Its random draws are
    the ones a pass over the whole drive makes, in that order (every
    epoch's speed error, then every epoch's position error, then each
    epoch's satellites and HDOP): each run of them has a generator of its
    own, started where the run starts, so a piece draws its own share."""

    def __init__(self, receiver: Receiver, route, first_s: float, last_s: float):
        self.receiver, self.route = receiver, route
        rate = receiver.rate_hz
        self.next_epoch = math.ceil(first_s * rate)
        self.last_epoch = math.floor(last_s * rate)
        epochs = max(0, self.last_epoch - self.next_epoch + 1)
        self.speed_rng = np.random.default_rng(receiver.seed)
        self.noise_rng = _drawn(receiver.seed, epochs)
        self.fix_rng = _drawn(receiver.seed, epochs * 3 if receiver.noise_m else epochs)
        self.last = None  # (time s, speed km/h, distance m) of the trace's last point so far
        self.free = 0.0  # when the UART is free to send the next byte

    def add(self, time_s, speed_kmh) -> list:
        """[(time s the last byte arrives, sentence bytes)] of the epochs up
        to the end of ``time_s``, the trace's next piece."""
        receiver = self.receiver
        time_s = np.asarray(time_s, float)
        speed = np.asarray(speed_kmh, float)
        start = 0.0
        if self.last is not None:  # the piece goes on from the last point, as one trace would
            time_s = np.concatenate(([self.last[0]], time_s))
            speed = np.concatenate(([self.last[1]], speed))
            start = self.last[2]
        distance = np.cumsum(np.concatenate(([start], np.diff(time_s) * (speed[1:] + speed[:-1]) / 2 / 3.6)))
        self.last = (time_s[-1], speed[-1], distance[-1])
        last = min(self.last_epoch, math.floor(time_s[-1] * receiver.rate_hz))
        epochs = np.arange(self.next_epoch, last + 1)
        self.next_epoch = max(self.next_epoch, last + 1)
        te = epochs / receiver.rate_hz
        lat, lon, course = self.route.at(np.interp(te, time_s, distance))
        v = np.maximum(np.interp(te, time_s, speed) + self.speed_rng.normal(0, 0.1, te.size), 0)
        noise = (self.noise_rng.normal(0, receiver.noise_m, (te.size, 2)) if receiver.noise_m
                 else np.zeros((te.size, 2)))
        out = []
        per_byte = 10.0 / receiver.baud
        for k, t in enumerate(te):
            when = self.route.start + _dt.timedelta(seconds=float(t))
            dn, de = noise[k]
            jump = receiver._in(receiver.jumps, t)
            if jump is not None:
                c = math.radians(jump[3] if len(jump) > 3 else course[k] + 90)
                dn += jump[2] * math.cos(c)
                de += jump[2] * math.sin(c)
            la = lat[k] + dn / M_PER_DEG
            lo = lon[k] + de / (M_PER_DEG * math.cos(math.radians(lat[k])))
            lost = receiver._in(receiver.outages, t) is not None
            full = receiver.rate_hz == 1 or epochs[k] % receiver.rate_hz == 0
            sats, hdop = int(self.fix_rng.integers(7, 13)), float(self.fix_rng.uniform(0.7, 1.4))
            batch = [rmc(when, None if lost else la, lo, v[k], course[k], receiver.talker)]
            if full:
                batch.append(vtg(None if lost else v[k], course[k], receiver.talker))
                batch.append(gga(when, None if lost else la, lo, 0 if lost else sats, hdop, talker=receiver.talker))
            start = t + MODULE_LATENCY_S
            for text in batch:
                self.free = max(self.free, start) + len(text) * per_byte
                out.append((self.free, text))
        return out


def _drawn(seed: int, normals: int):
    """A generator seeded with ``seed`` once it has drawn ``normals`` normal
    variates (drawn in blocks: nothing the size of the drive is held)."""
    rng = np.random.default_rng(seed)
    while normals > 0:
        rng.standard_normal(min(normals, 1 << 16))
        normals -= 1 << 16
    return rng


def uart_records(timed_sentences) -> np.ndarray:
    """UART control records (record.CONTROL_UART, up to 8 bytes each) for
    [(time s, bytes)]: each sentence's records stamped when it has arrived."""
    rows = []
    for t, data in timed_sentences:
        stamp = round(t * 1e6)
        for i in range(0, len(data), 8):
            chunk = data[i:i + 8]
            rows.append((stamp, record.CONTROL_UART, record.FLAG_CONTROL, len(chunk), 0,
                         tuple(chunk.ljust(8, b"\0"))))
    return np.array(rows, dtype=record.DTYPE)


def merge(frames: np.ndarray, uart: np.ndarray) -> np.ndarray:
    """CAN records and UART records in one stream, in time order (a frame
    before UART bytes of the same microsecond)."""
    both = np.concatenate([frames, uart])
    order = np.argsort(both["timestamp_us"], kind="stable")
    return both[order]


def interleave(pieces):
    """``merge`` of a stream given a piece at a time: ``pieces`` of (CAN
    records, UART records, due), ``due`` a timestamp (µs) no record of a
    later piece comes before. Yields the records before it as each piece
    comes, holding the rest for the next, and what is held at the end: put
    together, ``merge`` of all of them."""
    held_frames = held_uart = np.zeros(0, record.DTYPE)
    for frames, uart, due in pieces:
        frames = np.concatenate([held_frames, frames])
        uart = np.concatenate([held_uart, uart])
        early_frames, early_uart = frames["timestamp_us"] < due, uart["timestamp_us"] < due
        yield merge(frames[early_frames], uart[early_uart])
        held_frames, held_uart = frames[~early_frames], uart[~early_uart]
    yield merge(held_frames, held_uart)
