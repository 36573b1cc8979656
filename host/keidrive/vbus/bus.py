"""``can.Bus(interface="keidrive", channel="sim0")``: a python-can bus on the hub.

Registered through the ``can.interface`` entry point, so python-can's own
tools (``python -m can.logger -i keidrive -c sim0``) and cantools
(``cantools monitor -i keidrive -c sim0 DBC``) attach to a running simulation.
"""

import collections
import os
import select
import socket
import time

import can

from ..errors import KeidriveError
from ..io import record
from . import hub, wire


class BusInitError(KeidriveError, can.CanInitializationError):
    """The bus cannot be opened: python-can's error for python-can's tools, and
    keidrive's one-line user error for the keidrive command."""


class HubGoneError(KeidriveError, can.CanOperationError):
    """The channel's hub went away under a client."""


class KeidriveBus(can.BusABC):
    def __init__(
        self,
        channel: str = "sim0",
        receive_own_messages: bool = False,
        bitrate: int | None = None,
        spawn: bool = True,
        **kwargs,
    ):
        channel = str(channel)
        try:
            if spawn:
                path = hub.ensure_hub(channel, bitrate)
            else:
                hub.check_bus_dir()
                path = hub.socket_path(channel)
        except KeidriveError as error:
            raise BusInitError(str(error)) from None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(path)
        except OSError as error:
            self._sock.close()
            raise BusInitError(f"keidrive bus {channel!r}: {error.strerror} ({path})") from None
        self._inbox = bytearray()
        self._own: collections.deque = collections.deque()
        self._receive_own = receive_own_messages
        self.channel = channel
        self.channel_info = f"keidrive virtual CAN {channel} ({path})"
        # The handshake: the hub answers once it has this client on its list,
        # so every frame sent on the channel from now on reaches it.
        try:
            self.bus_stats()
        except HubGoneError as error:
            self._sock.close()
            raise BusInitError(str(error)) from None
        super().__init__(channel=channel, **kwargs)

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        flags = (
            (record.FLAG_EXTENDED if msg.is_extended_id else 0)
            | (record.FLAG_REMOTE if msg.is_remote_frame else 0)
            | (record.FLAG_ERROR if msg.is_error_frame else 0)
        )
        if msg.is_fd or msg.dlc > 8:
            raise can.CanOperationError("keidrive virtual CAN carries classic CAN frames (DLC 0-8) only")
        widest = 0x1FFFFFFF if msg.is_extended_id or msg.is_error_frame else 0x7FF
        if not 0 <= msg.arbitration_id <= widest:
            # The hub would refuse it; say so here rather than count it there.
            raise can.CanOperationError(
                f"identifier 0x{msg.arbitration_id:X} does not fit a {'29' if widest > 0x7FF else '11'}-bit identifier"
            )
        # python-can leaves an unstamped message at 0: stamp it as sent.
        timestamp_us = int((msg.timestamp or time.time()) * 1e6)
        data = b"" if msg.is_remote_frame else bytes(msg.data[: msg.dlc])
        self._write(wire.seal_one(record.pack(timestamp_us, msg.arbitration_id, flags, msg.dlc, data)))
        if self._receive_own:
            own = can.Message(
                timestamp=msg.timestamp or time.time(),
                arbitration_id=msg.arbitration_id,
                is_extended_id=msg.is_extended_id,
                is_remote_frame=msg.is_remote_frame,
                is_error_frame=msg.is_error_frame,
                dlc=msg.dlc,
                data=msg.data,
                channel=self.channel,
                is_rx=False,
            )
            self._own.append(own)

    def send_records(self, records: bytes) -> None:
        """Bulk send of packed records (the simulator's traffic): much faster
        than one ``send`` per frame."""
        try:
            sealed = wire.seal(records)
        except ValueError as error:
            raise can.CanOperationError(f"keidrive bus {self.channel!r}: {error}") from None
        self._write(sealed)

    def _write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as error:
            raise HubGoneError(f"keidrive bus {self.channel!r}: the hub went away ({error.strerror})") from None

    def bus_stats(self, timeout: float = 3 * hub.STALL_S) -> dict:
        """As the hub counts them: clients attached, frames carried, bus load
        (now and peak, as a fraction of the bitrate), and for this client the
        frames it lost by not reading (``dropped``) and the bad records it sent
        that the hub refused (``rejected``).

        The answer can wait while a receiver that stopped reading still holds
        the bus (up to the hub's stall time), hence the default timeout."""
        return hub.parse_stats(self._ask(record.control(record.CONTROL_STATS), record.CONTROL_STATS, timeout))

    def claim(self, timeout: float = 3 * hub.STALL_S) -> None:
        """Claim the channel for a drive: one drive at a time drives a
        channel, so a second one's frames never mix with the first one's.
        Raises ``BusInitError`` naming the process that holds it; the claim
        ends when this client disconnects."""
        granted, owner = wire.parse_claim(self._ask(wire.claim_record(os.getpid()), record.CONTROL_CLAIM, timeout))
        if not granted:
            raise BusInitError(
                f"keidrive bus {self.channel!r} is being driven by another drive (process {owner}): "
                "one drive per channel; drive on another channel, or let that one finish"
            )

    def _ask(self, request: bytes, command: int, timeout: float) -> bytes:
        """The hub's answer to the control record ``request``: the record of
        ``command`` it sends this client alone (others stay queued for ``recv``)."""
        self._write(wire.seal_one(request))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = self._read_record(deadline - time.monotonic(), control=command)
            if raw is not None:
                return raw
        raise HubGoneError(f"keidrive bus {self.channel!r}: the hub did not answer within {timeout:g} s")

    def _read_record(self, timeout: float | None, control: int | None = None):
        """The next whole record from the socket, or None on timeout.

        With ``control`` only that control command's record is returned;
        records read meanwhile stay queued for ``recv``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        scan = 0
        while True:
            while scan + record.SIZE <= len(self._inbox):
                flags = self._inbox[scan + 12]
                command = int.from_bytes(self._inbox[scan + 8 : scan + 12], "little")
                if control is None or (flags & record.FLAG_CONTROL and command == control):
                    raw = bytes(self._inbox[scan : scan + record.SIZE])
                    del self._inbox[scan : scan + record.SIZE]
                    return raw
                scan += record.SIZE
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._sock], [], [], remaining)
            if not ready:
                return None
            try:
                chunk = self._sock.recv(hub.READ_CHUNK)
            except OSError as error:
                raise HubGoneError(f"keidrive bus {self.channel!r}: the hub went away ({error.strerror})") from None
            if not chunk:
                raise HubGoneError(f"keidrive bus {self.channel!r}: the hub closed the connection")
            self._inbox += chunk

    def _recv_internal(self, timeout: float | None):
        if self._own:
            return self._own.popleft(), False
        while True:
            raw = self._read_record(timeout)
            if raw is None:
                return None, False
            timestamp_us, can_id, flags, dlc, data = record.unpack(raw)
            if flags & record.FLAG_CONTROL:
                continue
            msg = can.Message(
                timestamp=timestamp_us / 1e6,
                arbitration_id=can_id,
                is_extended_id=bool(flags & record.FLAG_EXTENDED),
                is_remote_frame=bool(flags & record.FLAG_REMOTE),
                is_error_frame=bool(flags & record.FLAG_ERROR),
                dlc=dlc,
                data=data,
                channel=self.channel,
            )
            return msg, False

    def shutdown(self) -> None:
        super().shutdown()
        self._sock.close()

    @staticmethod
    def _detect_available_configs():
        try:
            names = os.listdir(hub.bus_dir())
        except FileNotFoundError:
            return []
        return [
            {"interface": "keidrive", "channel": name[: -len(".sock")]}
            for name in sorted(names)
            if name.endswith(".sock")
        ]
