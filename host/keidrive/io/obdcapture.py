"""The OBD-II exchange in a recorded log: the tester's requests and an ECU's
replies, reassembled from their ISO-TP frames.

A capture is what a tester (a CANedge, an ELM327, a scan tool) and the car's
ECUs said on the bus (ISO 15765-4): requests on 0x7DF / 0x7E0-0x7E7 (29-bit
0x18DB33F1 / 0x18DAxxF1), replies on 0x7E8-0x7EF (29-bit 0x18DAF1xx), a
reply longer than 7 bytes as a first frame and consecutive frames after the
tester's flow control. ``read_capture`` keeps the replies of the ECU that
answered most (the engine ECU on every car that answers OBD-II at all), each
with its frames as they were on the bus (padding included) and the delay
from the request it answers. Other traffic in the log is left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from statistics import median

from ..errors import KeidriveError

REPLY_11 = range(0x7E8, 0x7F0)
REQUEST_11 = (0x7DF, *range(0x7E0, 0x7E8))
REPLY_29_BASE = 0x18DAF100
FUNCTIONAL_29 = 0x18DB33F1
# A reply this long after the last request is not taken as its answer.
ANSWER_WINDOW_S = 1.0


@dataclass
class Reply:
    t: float  # its first frame, seconds from the capture's first OBD-II frame
    payload: bytes  # the ISO-TP message: service + 0x40, PID(s), data
    frames: list  # the frames' data as recorded, padding included
    request: bytes | None  # the request it answers (None: none recorded before it)
    delay_s: float | None  # from that request


@dataclass
class Capture:
    replies: list  # [Reply] of one ECU, in time order
    reply_id: int
    extended: bool
    requests: int  # requests the tester sent (to any ECU)
    start: float  # timestamp of the first OBD-II frame (the log's clock)
    duration_s: float
    padding: int | None  # the byte after a short reply's data (None: frames cut to their length)
    broken: int = 0  # multi-frame replies lost to a missing or out-of-sequence frame
    other_ecus: dict = field(default_factory=dict)  # reply id: replies, for ECUs not replayed

    @property
    def response_delay_s(self) -> float:
        """The median delay from a request to its reply (0.005 s when none is known)."""
        delays = [r.delay_s for r in self.replies if r.delay_s is not None]
        return median(delays) if delays else 0.005


def _is_request(msg) -> bool:
    if msg.is_extended_id:
        return msg.arbitration_id == FUNCTIONAL_29 or msg.arbitration_id & 0xFFFF00FF == 0x18DA00F1
    return msg.arbitration_id in REQUEST_11


def _is_reply(msg) -> bool:
    if msg.is_extended_id:
        return msg.arbitration_id & 0xFFFFFF00 == REPLY_29_BASE
    return msg.arbitration_id in REPLY_11


class _Reassembly:
    """One ECU's replies from its frames (ISO 15765-2 receive)."""

    def __init__(self):
        self.replies: list = []
        self.broken = 0
        self.paddings: Counter = Counter()
        self._open = None  # (t, length, data, frames, next sequence number, request)

    def frame(self, t: float, data: bytes, request) -> None:
        kind = data[0] >> 4 if data else 0xF
        if kind == 0:  # single frame
            n = data[0] & 0x0F
            if 1 <= n <= len(data) - 1:
                self._abandon()
                self.paddings.update(data[1 + n:])
                self._done(t, bytes(data[1:1 + n]), [bytes(data)], request)
        elif kind == 1 and len(data) >= 2:  # first frame
            self._abandon()
            length = ((data[0] & 0x0F) << 8) | data[1]
            self._open = (t, length, bytearray(data[2:]), [bytes(data)], 1, request)
        elif kind == 2 and self._open is not None:  # consecutive frame
            t0, length, payload, frames, seq, req = self._open
            if data[0] & 0x0F != seq:
                self._abandon()
                return
            payload += data[1:]
            frames.append(bytes(data))
            if len(payload) >= length:
                self.paddings.update(payload[length:])
                self._open = None
                self._done(t0, bytes(payload[:length]), frames, req)
            else:
                self._open = (t0, length, payload, frames, (seq + 1) & 0x0F, req)

    def _abandon(self) -> None:
        if self._open is not None:
            self.broken += 1
            self._open = None

    def _done(self, t, payload, frames, request) -> None:
        req, t_req = request if request is not None and t - request[1] <= ANSWER_WINDOW_S else (None, None)
        self.replies.append(Reply(t, payload, frames, req, None if t_req is None else t - t_req))


def read_capture(messages, source: str = "the log") -> Capture:
    """The OBD-II exchange of a log's python-can messages; a log without one
    (no reply on an OBD-II reply id) fails with one line naming ``source``."""
    ecus: dict = {}
    request = None  # (payload, t) of the last single-frame request
    requests = 0
    start = None
    end = 0.0
    for msg in messages:
        if msg.is_error_frame or msg.is_remote_frame:
            continue
        asks, answers = _is_request(msg), _is_reply(msg)
        if not (asks or answers):
            continue
        if start is None:
            start = msg.timestamp
        t = msg.timestamp - start
        end = t
        data = bytes(msg.data)
        if asks:
            if data and data[0] >> 4 == 0 and 1 <= data[0] & 0x0F <= len(data) - 1:
                request = (data[1:1 + (data[0] & 0x0F)], t)
                requests += 1
            continue
        key = (msg.arbitration_id, bool(msg.is_extended_id))
        ecus.setdefault(key, _Reassembly()).frame(t, data, request)
    if not ecus or not any(r.replies for r in ecus.values()):
        raise KeidriveError(f"{source}: no OBD-II replies in it (none on 0x7E8-0x7EF or 0x18DAF1xx)")
    (reply_id, extended), main = max(ecus.items(), key=lambda kv: len(kv[1].replies))
    padding = main.paddings.most_common(1)[0][0] if main.paddings else None
    others = {hex(k[0]): len(r.replies) for k, r in ecus.items() if k != (reply_id, extended)}
    return Capture(main.replies, reply_id, extended, requests, start, end, padding, main.broken, others)
