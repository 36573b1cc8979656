"""A simulated engine ECU answering OBD-II (SAE J1979) over ISO 15765-4.

``EngineEcu(result)`` answers Mode 01 (current data) and Mode 09 (vehicle
information) from the simulator's state when it answers (``result.ecu``,
10 ms steps: the step holding the reply's time), each value
quantised exactly as its PID scales it, after a response delay drawn
uniformly from ``DELAY_S`` (a real ECU answers within P2 = 50 ms). It
offers only the PIDs its vehicle's ``[obd] pids`` list (an engine of that
kind's sensors), the supported-PID maps that describe them, a 17-character
VIN and a calibration ID.

The transport is can-isotp (``isotp.TransportLayerLogic``) on the ECU's
physical addresses (11-bit 0x7E8 / 0x7E0 by default, or 29-bit normal
fixed 0x18DAF1xx / 0x18DAxxF1): single frames, first + consecutive frames
under the tester's flow control (block size, STmin, wait frames). Functional
requests (0x7DF, 0x18DB33F1) are single frames by ISO 15765-4 and are read
here directly.

The transport (addressing, response scheduling, can-isotp) is ``IsoTpEcu``'s;
``keidrive.sim.recorded_ecu`` answers through it from a recorded capture.

``faults``: ``{"silent": True}`` never answers; ``{"stop_at_s": t}`` stops
answering at drive time t; ``{"garbage": p}`` answers a share p of requests
with random bytes; ``{"busy": p}`` a share p with the negative response
0x7F <service> 0x21 (busy, repeat request).

``HostileEcu(kind)`` is a second ECU on the same port that claims every
Mode 01 PID in its supported-PID maps and then, by ``kind`` (``HOSTILE``):
never answers them (``silent``), answers each request only with "response
pending" 0x7F 01 0x78, again every 4 s (``pending``), or answers every PID
asked with random values (``garbage``).
"""

from __future__ import annotations

import numpy as np

from ..errors import KeidriveError

DELAY_S = (0.005, 0.030)
HOSTILE = ("silent", "pending", "garbage")
PENDING_AGAIN_S = 4.0  # under P2* (5 s): the tester's wait never ends
FUNCTIONAL_11 = 0x7DF
FUNCTIONAL_29 = 0x18DB33F1


def _u(x, lo, hi):
    return int(min(max(round(float(x)), lo), hi))


# PID: (bytes, encoder(state at step i) -> int), J1979 scaling
ENCODERS = {
    0x03: (2, lambda s, i: int(s["fuel_status"][i]) << 8),
    0x04: (1, lambda s, i: _u(s["load_pct"][i] * 255 / 100, 0, 255)),
    0x05: (1, lambda s, i: _u(s["coolant_c"][i] + 40, 0, 255)),
    0x0B: (1, lambda s, i: _u(s["map_kpa"][i], 0, 255)),
    0x0C: (2, lambda s, i: _u(s["rpm"][i] * 4, 0, 65535)),
    0x0D: (1, lambda s, i: _u(s["speed_kmh"][i], 0, 255)),
    0x0F: (1, lambda s, i: _u(s["iat_c"][i] + 40, 0, 255)),
    0x10: (2, lambda s, i: _u(s["maf_gs"][i] * 100, 0, 65535)),
    0x11: (1, lambda s, i: _u(s["throttle_pct"][i] * 255 / 100, 0, 255)),
    0x2F: (1, lambda s, i: _u(s["fuel_level_pct"][i] * 255 / 100, 0, 255)),
    0x44: (2, lambda s, i: _u(s["lambda"][i] * 32768, 0, 65535)),
    0x46: (1, lambda s, i: _u(s["ambient_c"][i] + 40, 0, 255)),
    0x5E: (2, lambda s, i: _u(s["fuel_lph"][i] * 20, 0, 65535)),
    0xA6: (4, lambda s, i: _u(s["odometer_km"][i] * 10, 0, 0xFFFFFFFF)),
}


def supported_map(pids, base: int) -> int:
    """The 32-bit supported-PID word for PIDs base+1 .. base+32; bit 0 says
    whether the next map exists."""
    word = 0
    for pid in pids:
        if base < pid <= base + 32:
            word |= 1 << (32 - (pid - base))
    return word


def supported_maps(pids) -> dict:
    """{0x00: word, 0x20: word, ...}: the maps an ECU offering ``pids`` answers,
    each saying whether the next exists."""
    bases = [b for b in range(0, 0xE1, 0x20) if any(p > b for p in pids)]
    return {b: supported_map(pids, b) | (1 if any(m > b for m in bases) else 0) for b in bases}


class IsoTpEcu:
    """An ECU's side of ISO 15765-4: which frames it hears, when it answers
    and how its replies go out (can-isotp, padded with ``padding``). A
    subclass says what it answers (``reply``) and after how long
    (``delay``); ``on_frame(...)`` and ``process(...)`` drive it on the
    caller's clock (the co-simulation's virtual time), ``txfn`` gets frames.
    ``seg``: the (start, end) spans of time in which it is on."""

    def __init__(self, *, reply_id: int = 0x7E8, extended: bool = False, source_address: int = 0x10,
                 padding: int = 0x00):
        self.extended = extended
        self.reply_id = (0x18DAF100 | source_address) if extended else reply_id
        self.phys_id = (0x18DA00F1 | (source_address << 8)) if extended else reply_id - 8
        self.padding = padding
        self.seg: list = []
        self.pending: list = []  # (due_s, request)
        self._rx: list = []  # flow control frames from the tester
        self.answered = 0
        self._stack = None

    def reply(self, request: bytes, t: float) -> bytes | None:
        """The response payload to a request payload at time t, or None (no reply)."""
        raise NotImplementedError

    def delay(self) -> float:
        """Seconds from a request to its reply."""
        raise NotImplementedError

    def deaf(self, t: float) -> bool:
        """Requests at time t go unanswered (a fault)."""
        return False

    def _payload(self, request: bytes, t: float) -> bytes | None:
        """The reply as sent at t."""
        return self.reply(request, t)

    # ---- on the bus ---------------------------------------------------
    def hears(self, can_id: int, extended: bool) -> bool:
        if extended != self.extended:
            return False
        return can_id in ((FUNCTIONAL_29 if extended else FUNCTIONAL_11), self.phys_id)

    def on_frame(self, can_id: int, data: bytes, t: float) -> None:
        """A frame from the tester at time t: a functional request, or flow
        control for a multi-frame reply in progress."""
        if can_id == self.phys_id and data and data[0] >> 4 == 3:
            self._rx.append(bytes(data))
            return
        if not data or data[0] >> 4 != 0:
            return
        n = data[0] & 0x0F
        if not 1 <= n <= 7 or n > len(data) - 1:
            return
        request = bytes(data[1:1 + n])
        if self.deaf(t) or self.reply(request, t) is None:
            return
        self.pending.append((t + self.delay(), request))

    def next_due(self) -> float | None:
        return min((p[0] for p in self.pending), default=None)

    def process(self, t: float, txfn) -> None:
        """Send what is due by t; ``txfn(can_id, extended, data)`` puts a
        frame on the bus (the caller stamps its time)."""
        stack = self._link(txfn)
        due = [p for p in self.pending if p[0] <= t]
        if due and not stack.transmitting():
            self.pending.remove(due[0])
            payload = self._payload(due[0][1], due[0][0])
            if payload is not None:
                stack.send(payload)
                self.answered += 1
        stack.process()

    @property
    def busy(self) -> bool:
        return self._stack is not None and self._stack.transmitting()

    def _link(self, txfn):
        import isotp

        self._txfn = txfn
        if self._stack is None:
            if self.extended:
                address = isotp.Address(isotp.AddressingMode.NormalFixed_29bits,
                                        source_address=self.reply_id & 0xFF, target_address=0xF1)
            else:
                address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=self.reply_id, rxid=self.phys_id)
            self._stack = isotp.TransportLayerLogic(
                rxfn=self._rxfn, txfn=self._emit, address=address,
                params={"tx_padding": self.padding, "tx_data_min_length": 8, "wftmax": 8,
                        "rx_flowcontrol_timeout": 1000},
            )
        return self._stack

    def _rxfn(self, timeout):
        import isotp

        if self._rx:
            data = self._rx.pop(0)
            return isotp.CanMessage(arbitration_id=self.phys_id, data=data, dlc=len(data),
                                    extended_id=self.extended)
        return None

    def _emit(self, msg):
        self._txfn(msg.arbitration_id, bool(msg.is_extended_id), bytes(msg.data))


class EngineEcu(IsoTpEcu):
    """One simulated engine ECU, answering from the simulator's state."""

    def __init__(self, result, *, reply_id: int = 0x7E8, extended: bool = False, source_address: int = 0x10,
                 seed: int = 0, faults: dict | None = None):
        if result.ecu is None:
            raise KeidriveError(f"{result.vehicle.name} has no engine: no engine ECU answers OBD-II")
        super().__init__(reply_id=reply_id, extended=extended, source_address=source_address)
        obd = result.vehicle.data.get("obd")
        if not obd:
            raise KeidriveError(f"vehicle {result.vehicle.name} has no [obd] section (the PIDs its ECU offers)")
        self.state = result.ecu
        self.pids = sorted({int(p) for p in obd["pids"]} & set(ENCODERS))
        self.maps = supported_maps(self.pids)
        self.vin = str(obd["vin"]).encode("ascii")
        if len(self.vin) != 17:
            raise KeidriveError(f"vehicle {result.vehicle.name}: [obd] vin must have 17 characters")
        self.calid = str(obd.get("calibration_id", "")).encode("ascii")[:16].ljust(16, b"\0")
        self.t_end = self.state["t_end"]
        self.seg = list(zip(self.state["segment_start"].tolist(), self.state["segment_end"].tolist()))
        self.rng = np.random.default_rng(seed)
        self.faults = faults or {}

    # ---- what it says -------------------------------------------------
    def step(self, t: float) -> int | None:
        """The 10 ms step holding drive time t, None when the engine ECU is
        off (before, after or between the drive's segments)."""
        if not any(a <= t <= b for a, b in self.seg):
            return None
        i = int(np.searchsorted(self.t_end, t))
        return min(i, len(self.t_end) - 1)

    def reply(self, request: bytes, t: float) -> bytes | None:
        """The response payload to a request payload at time t, or None (no
        reply: not supported, as J1979 ECUs stay silent to functional
        requests for PIDs they lack)."""
        if len(request) < 2:
            return None
        i = self.step(t)
        if i is None:
            return None
        svc = request[0]
        if svc == 0x01:
            out = bytearray([0x41])
            for pid in request[1:7]:
                if pid in self.maps:
                    out += bytes([pid]) + self.maps[pid].to_bytes(4, "big")
                elif pid in self.pids:
                    n, enc = ENCODERS[pid]
                    out += bytes([pid]) + enc(self.state, i).to_bytes(n, "big")
            return bytes(out) if len(out) > 1 else None
        if svc == 0x09:
            pid = request[1]
            if pid == 0x00:
                return bytes([0x49, 0x00]) + supported_map((0x02, 0x04), 0).to_bytes(4, "big")
            if pid == 0x02:
                return bytes([0x49, 0x02, 0x01]) + self.vin
            if pid == 0x04:
                return bytes([0x49, 0x04, 0x01]) + self.calid
            return None
        return bytes([0x7F, svc, 0x11])  # service not supported

    def delay(self) -> float:
        return float(self.rng.uniform(*DELAY_S))

    def deaf(self, t: float) -> bool:
        f = self.faults
        return bool(f.get("silent")) or ("stop_at_s" in f and t >= f["stop_at_s"])

    def _payload(self, request: bytes, t: float) -> bytes | None:
        """The reply as sent at t: the values sampled when the ECU answers,
        or what a fault makes of it."""
        payload = self.reply(request, t)
        if payload is None:
            return None
        f = self.faults
        u = self.rng.random()
        if u < f.get("garbage", 0.0):
            return self.rng.integers(0, 256, int(self.rng.integers(1, 12)), dtype=np.uint8).tobytes()
        if u < f.get("garbage", 0.0) + f.get("busy", 0.0):
            return bytes([0x7F, request[0], 0x21])
        return payload

class HostileEcu(EngineEcu):
    """A second ECU (0x7E9, or source address 0x11 on 29 bits) that claims
    every Mode 01 PID and then lies about it as ``kind`` says (``HOSTILE``)."""

    def __init__(self, result, kind: str, *, extended: bool = False, seed: int = 1):
        if kind not in HOSTILE:
            raise KeidriveError(f"no hostile ECU kind {kind!r} (kinds: {', '.join(HOSTILE)})")
        super().__init__(result, reply_id=0x7E9, extended=extended, source_address=0x11, seed=seed)
        self.kind = kind
        self.maps = {b: 0xFFFFFFFF if b < 0xE0 else 0xFFFFFFFE for b in range(0, 0xE1, 0x20)}
        self.again = None  # the scheduled repeat of the last "response pending"

    def reply(self, request: bytes, t: float) -> bytes | None:
        if len(request) < 2 or request[0] != 0x01 or self.step(t) is None:
            return None
        pids = request[1:7]
        if all(pid in self.maps for pid in pids):
            return bytes([0x41]) + b"".join(bytes([pid]) + self.maps[pid].to_bytes(4, "big") for pid in pids)
        if self.kind == "silent":
            return None
        if self.kind == "pending":
            return bytes([0x7F, 0x01, 0x78])
        out = bytearray([0x41])
        for pid in pids:
            if pid in ENCODERS:
                n = ENCODERS[pid][0]
                out += bytes([pid]) + self.rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        return bytes(out)

    def on_frame(self, can_id: int, data: bytes, t: float) -> None:
        if self.again in self.pending and data and data[0] >> 4 == 0:
            self.pending.remove(self.again)  # a new request: the old one is given up
        super().on_frame(can_id, data, t)

    def _payload(self, request: bytes, t: float) -> bytes | None:
        payload = self.reply(request, t)
        if payload is not None and payload[0] == 0x7F:
            self.again = (t + PENDING_AGAIN_S, request)
            self.pending.append(self.again)
        return payload
