"""An engine ECU that answers OBD-II from a recorded capture.

``RecordedEcu(capture)`` (``keidrive.io.obdcapture``) answers a tester's
requests with what the car's ECU said in the recording, so the firmware's
OBD-II client can be driven by a real car's replies on the lockstep bus
(``keidrive.drive.obdreplay``).

- **Nearest in time.** A request at time t is answered, PID by PID, with the
  recorded reply for that PID nearest to t: a request between two recorded
  answers gets the nearer one, and exactly halfway the earlier. A value
  therefore holds from halfway after the previous answer to halfway before
  the next: the firmware, polling at 10 Hz where the recorder asked every
  few seconds, sees each recorded value for as long as it stood nearest.
  A recorded answer more than ``STALE_S`` from t is not used (a gap in the
  recording leaves that PID unanswered), and outside the span from the
  capture's first OBD-II frame to its last reply the ECU is off and silent.
- **Several PIDs in one request** (the firmware asks speed and fuel rate
  together) are answered in one reply put together from each PID's nearest
  recorded data, as an ECU answers a multi-PID request. A PID the capture
  never answered is left out, as a J1979 ECU leaves out what it lacks.
- **Supported-PID maps** (Mode 01 0x00, 0x20 ...; Mode 09 0x00) are the
  recorded ones where the capture holds them, else made from the PIDs it
  holds answers for: a recorder that never asked for the maps knew them
  some other way.
- **On the bus** as recorded: the reply id, the padding byte of its frames
  and, for a reply longer than a single frame, the same segmentation (a
  first frame, then consecutive frames after the tester's flow control)
  through can-isotp: the capture's multi-frame replies come out frame for
  frame as they were recorded. Each reply follows its request after the
  capture's median response delay.
"""

from __future__ import annotations

from bisect import bisect_left

from .obd_ecu import ENCODERS, IsoTpEcu, supported_maps

STALE_S = 15.0  # about twice the poll interval of a recorder that cycles through 30 PIDs


class RecordedEcu(IsoTpEcu):
    """The capture's ECU, answering from its recorded replies."""

    def __init__(self, capture, *, stale_s: float = STALE_S):
        source_address = capture.reply_id & 0xFF if capture.extended else 0x10
        super().__init__(reply_id=capture.reply_id, extended=capture.extended, source_address=source_address,
                         padding=capture.padding)
        self.stale_s = stale_s
        self.series: dict = {}  # (service, pid or None): ([t], [data])
        self.skipped = 0  # multi-PID replies that could not be split
        lengths = _single_pid_lengths(capture.replies)
        for reply in capture.replies:
            for key, data in _answers(reply, lengths):
                if key is None:
                    self.skipped += 1
                    continue
                times, values = self.series.setdefault(key, ([], []))
                times.append(reply.t)
                values.append(data)
        self.maps = supported_maps(sorted(pid for svc, pid in self.series if svc == 0x01 and pid % 0x20))
        self.infotypes = supported_maps(sorted(pid for svc, pid in self.series if svc == 0x09 and pid % 0x20))
        self.seg = [(0.0, capture.replies[-1].t)]  # from the first OBD-II frame on the bus
        self._delay = capture.response_delay_s

    @property
    def pids(self) -> list:
        """The Mode 01 PIDs the capture holds answers for."""
        return sorted(pid for svc, pid in self.series if svc == 0x01 and pid % 0x20)

    def delay(self) -> float:
        return self._delay

    def nearest(self, key, t: float) -> bytes | None:
        """The recorded data for ``key`` nearest to t (the earlier one at
        exactly halfway), None if there is none within ``stale_s``."""
        if key not in self.series:
            return None
        times, values = self.series[key]
        i = bisect_left(times, t)
        if i == len(times) or (i > 0 and t - times[i - 1] <= times[i] - t):
            i -= 1
        return values[i] if abs(times[i] - t) <= self.stale_s else None

    def reply(self, request: bytes, t: float) -> bytes | None:
        if len(request) < 1 or not any(a <= t <= b for a, b in self.seg):
            return None
        svc = request[0]
        if svc == 0x01:
            out = bytearray([0x41])
            for pid in request[1:7]:
                data = self._data(0x01, pid, t, self.maps)
                if data is not None:
                    out += bytes([pid]) + data
            return bytes(out) if len(out) > 1 else None
        if svc == 0x09 and len(request) >= 2:
            data = self._data(0x09, request[1], t, self.infotypes)
            return None if data is None else bytes([0x49, request[1]]) + data
        data = self.nearest((svc, None), t)
        if data is None:
            return bytes([0x7F, svc, 0x11])  # service not supported
        return bytes([svc + 0x40]) + data

    def _data(self, svc: int, pid: int, t: float, maps: dict) -> bytes | None:
        data = self.nearest((svc, pid), t)
        if data is None and pid in maps:
            return maps[pid].to_bytes(4, "big")
        return data


def _single_pid_lengths(replies) -> dict:
    """Each Mode 01 PID's data length, from the replies to requests for it alone."""
    lengths = {}
    for reply in replies:
        p = reply.payload
        if p[:1] == b"\x41" and len(p) >= 2 and reply.request is not None and len(reply.request) == 2:
            lengths.setdefault(p[1], len(p) - 2)
    return lengths


def _answers(reply, lengths):
    """[(key, data)] of one recorded reply: one per PID of a Mode 01 reply
    (key None where a multi-PID reply cannot be split), the infotype's data
    of a Mode 09 reply, the rest of any other positive reply."""
    p = reply.payload
    if not p or p[0] == 0x7F or p[0] < 0x40:
        return []  # a negative reply is no value to answer with
    svc = p[0] - 0x40
    if svc == 0x01:
        asked = reply.request[1:] if reply.request is not None and reply.request[:1] == b"\x01" else b""
        if len(asked) <= 1 and len(p) >= 2:
            return [((0x01, p[1]), p[2:])]
        out, i = [], 1
        while i < len(p):
            n = lengths.get(p[i], ENCODERS[p[i]][0] if p[i] in ENCODERS else None)
            if n is None or i + 1 + n > len(p):
                return out + [(None, b"")]
            out.append(((0x01, p[i]), p[i + 1:i + 1 + n]))
            i += 1 + n
        return out
    if svc == 0x09:
        return [((0x09, p[1]), p[2:])] if len(p) >= 2 else []
    return [((svc, None), p[1:])]
