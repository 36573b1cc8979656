"""The hub: one process per channel that every client of that channel talks to.

Run by hand with ``python -m keidrive.vbus.hub CHANNEL`` (or let the first
client spawn it): it serves until its last client has been gone for
``linger`` seconds.
"""

import argparse
import errno
import fcntl
import heapq
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque

from ..errors import KeidriveError
from .. import record

NOMINAL_BITRATE = 500_000
LOAD_WINDOW_S = 1.0
READ_CHUNK = 256 * record.SIZE


def bus_dir() -> str:
    """Where channel sockets live: $KEIDRIVE_BUS_DIR, else a per-user temp folder."""
    configured = os.environ.get("KEIDRIVE_BUS_DIR")
    if configured:
        return configured
    return os.path.join(tempfile.gettempdir(), f"keidrive-bus-{os.getuid()}")


def socket_path(channel: str) -> str:
    if not channel or "/" in channel or channel.startswith("."):
        raise KeidriveError(f"invalid keidrive bus channel {channel!r}: use a plain name such as sim0")
    return os.path.join(bus_dir(), f"{channel}.sock")


class _Client:
    def __init__(self, sock: socket.socket, number: int):
        self.sock = sock
        self.number = number
        self.inbox = bytearray()
        self.outbox = bytearray()
        # Frames read from this client and not yet on the bus, in its order.
        self.queue: deque = deque()


class Hub:
    """Fan-out of frame records between the clients of one channel."""

    def __init__(self, path: str, bitrate: int | None = None, linger: float = 2.0):
        self.path = path
        self.bitrate = bitrate
        self.linger = linger
        self.selector = selectors.DefaultSelector()
        self.clients: dict[int, _Client] = {}
        self._next_number = 0
        self._bus_free_at = 0.0
        self.frames = 0
        self.bits = 0
        self._window: deque = deque()  # (wall time, bits) of recent frames
        self._window_bits = 0
        self.peak_load = 0.0

        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(64)
        self.server.setblocking(False)
        self.selector.register(self.server, selectors.EVENT_READ)

    # -- bus figures ------------------------------------------------------

    def load(self, now: float) -> float:
        while self._window and self._window[0][0] < now - LOAD_WINDOW_S:
            self._window_bits -= self._window.popleft()[1]
        return self._window_bits / ((self.bitrate or NOMINAL_BITRATE) * LOAD_WINDOW_S)

    def _count(self, now: float, bits: int) -> None:
        self.frames += 1
        self.bits += bits
        self._window.append((now, bits))
        self._window_bits += bits
        self.peak_load = max(self.peak_load, self.load(now))

    # -- serving ------------------------------------------------------------

    def serve(self) -> None:
        idle_since = time.monotonic()
        try:
            while True:
                timeout = self._timeout()
                for key, events in self.selector.select(timeout):
                    if key.fileobj is self.server:
                        self._accept()
                        continue
                    client = key.data
                    if events & selectors.EVENT_READ:
                        self._read(client)
                    if events & selectors.EVENT_WRITE and client.number in self.clients:
                        self._flush(client)
                self._transmit()
                now = time.monotonic()
                if self.clients:
                    idle_since = now
                elif now - idle_since >= self.linger:
                    return
        finally:
            self.close()

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._drop(client)
        self.selector.close()
        self.server.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _timeout(self) -> float:
        if self.bitrate and any(c.queue for c in self.clients.values()):
            return max(0.0, self._bus_free_at - time.monotonic())
        return 0.5 if not self.clients else 1.0

    def _accept(self) -> None:
        sock, _ = self.server.accept()
        sock.setblocking(False)
        client = _Client(sock, self._next_number)
        self._next_number += 1
        self.clients[client.number] = client
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _drop(self, client: _Client) -> None:
        self.clients.pop(client.number, None)
        try:
            self.selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()

    def _read(self, client: _Client) -> None:
        try:
            chunk = client.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(client)
            return
        client.inbox += chunk
        whole = len(client.inbox) - len(client.inbox) % record.SIZE
        if not whole:
            return
        batch = bytes(client.inbox[:whole])
        del client.inbox[:whole]
        arrived = time.monotonic()
        frames = []
        for offset in range(0, whole, record.SIZE):
            raw = batch[offset : offset + record.SIZE]
            timestamp_us, can_id, flags, dlc, _, _ = record.RECORD.unpack(raw)
            if flags & record.FLAG_CONTROL:
                if can_id == record.CONTROL_STATS:
                    self._answer_stats(client)
                    continue
                # Other commands travel to the other clients in frame order.
            frames.append((timestamp_us, record.arbitration_key(can_id, flags), offset, raw, flags, dlc, arrived))
        # Frames this client queued with the same timestamp go out in
        # arbitration order; the client's own order is kept otherwise (a
        # timestamp jump backwards is the sender's business, not the bus's).
        start = 0
        for end in range(1, len(frames) + 1):
            if end == len(frames) or frames[end][0] != frames[start][0]:
                frames[start:end] = sorted(frames[start:end], key=lambda f: (f[1], f[2]))
                start = end
        client.queue.extend(frames)

    def _answer_stats(self, client: _Client) -> None:
        load = self.load(time.monotonic())
        data = (
            min(self.frames, 0xFFFFFFFF).to_bytes(4, "little")
            + min(int(load * 1000), 0xFFFF).to_bytes(2, "little")
            + min(int(self.peak_load * 1000), 0xFFFF).to_bytes(2, "little")
        )
        # The reply's timestamp field carries the number of clients attached.
        client.outbox += record.pack(len(self.clients), record.CONTROL_STATS, record.FLAG_CONTROL, 8, data)
        self._flush(client)

    def _transmit(self) -> None:
        """Put queued frames on the bus: the head of every client's queue
        competes, the earliest timestamp then the lowest arbitration key wins."""
        heads = [(c.queue[0][0], c.queue[0][1], c.number) for c in self.clients.values() if c.queue]
        heapq.heapify(heads)
        touched = set()
        now = time.monotonic()
        while heads:
            _, _, number = heapq.heappop(heads)
            sender = self.clients[number]
            timestamp_us, _, _, raw, flags, dlc, arrived = sender.queue[0]
            bits = 0 if flags & record.FLAG_CONTROL else record.frame_bits(flags, dlc)
            start = now
            if self.bitrate:
                # Bus time, not wake-up time: a frame starts when the bus went
                # free (or when it arrived), however late this loop woke up.
                start = max(self._bus_free_at, arrived)
                if start > now:
                    break
                self._bus_free_at = start + bits / self.bitrate
            sender.queue.popleft()
            if bits:
                self._count(start, bits)
            for receiver in self.clients.values():
                if receiver is not sender:
                    receiver.outbox += raw
                    touched.add(receiver)
            if sender.queue:
                heapq.heappush(heads, (sender.queue[0][0], sender.queue[0][1], number))
        for receiver in touched:
            self._flush(receiver)

    def _flush(self, client: _Client) -> None:
        if client.outbox:
            try:
                sent = client.sock.send(client.outbox)
                del client.outbox[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(client)
                return
        # Reliable means never dropping: a slow reader's frames wait in its
        # outbox and the hub watches its socket until it drains.
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbox else 0)
        self.selector.modify(client.sock, events, client)


def ensure_hub(channel: str, bitrate: int | None = None, timeout: float = 5.0) -> str:
    """Connectable socket path of ``channel``'s hub, spawning the hub if none runs."""
    path = socket_path(channel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _accepts(path):
            return path
        try:
            os.unlink(path)  # left behind by a hub that died
        except FileNotFoundError:
            pass
        command = [sys.executable, "-m", "keidrive.vbus.hub", channel]
        if bitrate:
            command += ["--bitrate", str(bitrate)]
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _accepts(path):
                return path
            time.sleep(0.02)
    raise KeidriveError(f"the keidrive bus hub for channel {channel!r} did not start at {path}")


def _accepts(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError as error:
        if error.errno not in (errno.ENOENT, errno.ECONNREFUSED):
            raise
        return False
    finally:
        probe.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m keidrive.vbus.hub")
    parser.add_argument("channel")
    parser.add_argument("--bitrate", type=int, default=None, help="pace the bus at this bitrate")
    parser.add_argument("--linger", type=float, default=2.0, help="seconds to live after the last client leaves")
    args = parser.parse_args(argv)
    Hub(socket_path(args.channel), bitrate=args.bitrate, linger=args.linger).serve()


if __name__ == "__main__":
    main()
