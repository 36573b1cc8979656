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
        rng = np.random.default_rng(self.seed)
        time_s = np.asarray(time_s, float)
        speed = np.asarray(speed_kmh, float)
        distance = np.concatenate(([0.0], np.cumsum(np.diff(time_s) * (speed[1:] + speed[:-1]) / 2 / 3.6)))
        epochs = np.arange(math.ceil(time_s[0] * self.rate_hz), math.floor(time_s[-1] * self.rate_hz) + 1)
        te = epochs / self.rate_hz
        lat, lon, course = route.at(np.interp(te, time_s, distance))
        v = np.maximum(np.interp(te, time_s, speed) + rng.normal(0, 0.1, te.size), 0)
        noise = rng.normal(0, self.noise_m, (te.size, 2)) if self.noise_m else np.zeros((te.size, 2))
        out = []
        free = 0.0  # when the UART is free to send the next byte
        per_byte = 10.0 / self.baud
        for k, t in enumerate(te):
            when = route.start + _dt.timedelta(seconds=float(t))
            dn, de = noise[k]
            jump = self._in(self.jumps, t)
            if jump is not None:
                c = math.radians(jump[3] if len(jump) > 3 else course[k] + 90)
                dn += jump[2] * math.cos(c)
                de += jump[2] * math.sin(c)
            la = lat[k] + dn / M_PER_DEG
            lo = lon[k] + de / (M_PER_DEG * math.cos(math.radians(lat[k])))
            lost = self._in(self.outages, t) is not None
            full = self.rate_hz == 1 or epochs[k] % self.rate_hz == 0
            sats, hdop = int(rng.integers(7, 13)), float(rng.uniform(0.7, 1.4))
            batch = [rmc(when, None if lost else la, lo, v[k], course[k], self.talker)]
            if full:
                batch.append(vtg(None if lost else v[k], course[k], self.talker))
                batch.append(gga(when, None if lost else la, lo, 0 if lost else sats, hdop, talker=self.talker))
            start = t + MODULE_LATENCY_S
            for text in batch:
                free = max(free, start) + len(text) * per_byte
                out.append((free, text))
        return out


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
