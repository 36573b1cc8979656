"""The hub: one process per channel that every client of that channel talks to.

Run by hand with ``python -m keidrive.vbus.hub CHANNEL`` (or let the first
client spawn it): it serves until its last client has been gone for
``linger`` seconds.

Every record a client sends is checked (``wire``): bad ones are refused and
counted, never forwarded. A receiver that falls behind holds the bus: the hub
stops reading senders until it catches up, so a drive fed in lockstep loses
nothing. A receiver that stops reading altogether (its socket takes nothing
for ``stall_s`` while ``queue_limit`` frames wait for it) no longer holds
anyone up: like a CAN controller whose receive buffer is full (SocketCAN
drops on a full socket buffer and counts it), it loses the frames that do not
fit, counted in its ``bus_stats()["dropped"]``, until it reads again.

One client at a time may claim the channel (``CONTROL_CLAIM``): a drive
claims the bus it drives, and a second drive's claim is refused while the
first one's client is connected, so two drives never mix their frames on
one channel; watchers, which claim nothing, attach as ever.
"""

import argparse
import errno
import heapq
import os
import selectors
import socket
import sys
import time
from collections import deque

from ..errors import KeidriveError
from ..io import record
from . import wire
from .channel import bus_dir, check_bus_dir, ensure_hub, socket_path
from .wire import parse_stats, stats_record

# Clients find everything about a channel here.
__all__ = ["Hub", "bus_dir", "check_bus_dir", "ensure_hub", "parse_stats", "socket_path"]

NOMINAL_BITRATE = 500_000
LOAD_WINDOW_S = 1.0
LOAD_SLOTS_PER_S = 100  # the load window moves in 10 ms steps
READ_CHUNK = 1024 * record.SIZE
QUEUE_LIMIT = 65_536  # frames waiting for one receiver (1.5 MiB) before it holds the bus
STALL_S = 5.0
# Bits on the wire by (extended | remote) and DLC: record.frame_bits, looked up.
_SHAPE = record.FLAG_EXTENDED | record.FLAG_REMOTE
_FRAME_BITS = [[record.frame_bits(shape, dlc) for dlc in range(9)] for shape in range(_SHAPE + 1)]
# Accepting a client takes a descriptor; past the limit these errors say none is left.
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _Client:
    def __init__(self, sock: socket.socket, number: int, now: float):
        self.sock = sock
        self.number = number
        self.inbox = bytearray()
        self.outbox = bytearray()
        # Frames read from this client and not yet on the bus, in its order.
        self.queue: deque = deque()
        self.strict = False  # it seals its records: hold it to that (see wire)
        self.skipped = 0  # bytes of bad records and stray bytes refused
        self.dropped = 0  # frames it lost by not reading
        self.stalled = False
        self.asked = 0  # stats requests not answered yet
        self.progress_at = now  # last time its socket took bytes
        self.events = 0


class Hub:
    """Fan-out of frame records between the clients of one channel."""

    def __init__(
        self,
        path: str,
        bitrate: int | None = None,
        linger: float = 2.0,
        queue_limit: int = QUEUE_LIMIT,
        stall_s: float = STALL_S,
    ):
        self.path = path
        self.bitrate = bitrate
        self.linger = linger
        self.limit_bytes = queue_limit * record.SIZE
        self.queue_limit = queue_limit
        self.stall_s = stall_s
        self.selector = selectors.DefaultSelector()
        self.clients: dict[int, _Client] = {}
        self._next_number = 0
        self._bus_free_at = 0.0
        self._held = False
        self.frames = 0
        self.bits = 0
        self._window: deque = deque()  # [10 ms slot, bits] of recent frames
        self._window_bits = 0
        self.peak_load = 0.0
        self.owner: _Client | None = None  # the client whose claim holds the channel
        self.owner_pid = 0
        check_bus_dir()
        # Held back for the moment descriptors run out: closing it lets the hub
        # accept a newcomer only to close it, instead of spinning on the backlog.
        self._spare = os.open(os.devnull, os.O_RDONLY)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o177)  # the socket is born 0600
        try:
            self.server.bind(path)
        except OSError as error:
            self.server.close()
            os.close(self._spare)
            raise KeidriveError(f"cannot serve keidrive bus socket {path}: {error.strerror}") from None
        finally:
            os.umask(umask)
        self.server.listen(64)
        self.server.setblocking(False)
        self.selector.register(self.server, selectors.EVENT_READ)

    # -- bus figures ------------------------------------------------------

    def load(self, now: float) -> float:
        oldest = int((now - LOAD_WINDOW_S) * LOAD_SLOTS_PER_S)
        while self._window and self._window[0][0] <= oldest:
            self._window_bits -= self._window.popleft()[1]
        return self._window_bits / ((self.bitrate or NOMINAL_BITRATE) * LOAD_WINDOW_S)

    def _count(self, now: float, frames: int, bits: int) -> None:
        self.frames += frames
        self.bits += bits
        slot = int(now * LOAD_SLOTS_PER_S)
        if self._window and self._window[-1][0] == slot:
            self._window[-1][1] += bits
        else:
            self._window.append([slot, bits])
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
                    if events & selectors.EVENT_READ and client.number in self.clients:
                        self._read(client)
                    if events & selectors.EVENT_WRITE and client.number in self.clients:
                        self._flush(client)
                self._transmit()
                for client in list(self.clients.values()):
                    while client.asked and client.number in self.clients:
                        client.asked -= 1
                        self._answer_stats(client)
                now = time.monotonic()
                self._hold(now)
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
        os.close(self._spare)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _timeout(self) -> float:
        if self.bitrate and any(c.queue for c in self.clients.values()):
            return max(0.0, self._bus_free_at - time.monotonic())
        if self._held:
            return self.stall_s / 4  # to notice a receiver that stopped reading
        return 0.5 if not self.clients else 1.0

    def _accept(self) -> None:
        try:
            sock, _ = self.server.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            if error.errno not in _OUT_OF_DESCRIPTORS:
                raise
            self._refuse()
            return
        sock.setblocking(False)
        client = _Client(sock, self._next_number, time.monotonic())
        self._next_number += 1
        self.clients[client.number] = client
        self._watch(client)

    def _refuse(self) -> None:
        """No descriptor left for a newcomer: take it off the backlog and close
        it (it reads the end of the stream) and keep serving the others."""
        os.close(self._spare)
        try:
            self.server.accept()[0].close()
        except OSError:
            pass
        self._spare = os.open(os.devnull, os.O_RDONLY)

    def _drop(self, client: _Client) -> None:
        self.clients.pop(client.number, None)
        if client.events:
            self.selector.unregister(client.sock)
            client.events = 0
        client.sock.close()

    def _watch(self, client: _Client) -> None:
        """Listen to a client unless the bus is held or its own queue is full
        (its socket buffer then fills and its sends wait, as on a full TX
        queue); watch its socket for room while frames wait for it."""
        events = 0
        if not self._held and len(client.queue) < self.queue_limit:
            events |= selectors.EVENT_READ
        if client.outbox:
            events |= selectors.EVENT_WRITE
        if events == client.events:
            return
        if not events:
            self.selector.unregister(client.sock)
        elif not client.events:
            self.selector.register(client.sock, events, client)
        else:
            self.selector.modify(client.sock, events, client)
        client.events = events

    def _hold(self, now: float) -> None:
        """Hold the bus while a receiver that is still reading has a full queue;
        a receiver that took nothing for ``stall_s`` is let go (it drops)."""
        held = False
        for client in self.clients.values():
            if client.stalled:
                client.stalled = len(client.outbox) >= self.limit_bytes // 2
            elif len(client.outbox) >= self.limit_bytes:
                if now - client.progress_at >= self.stall_s:
                    client.stalled = True
                else:
                    held = True
        if held != self._held:
            self._held = held
            for client in list(self.clients.values()):
                self._watch(client)

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
        if len(client.inbox) < record.SIZE:
            return
        data = bytes(client.inbox)
        offsets, consumed, skipped, client.strict = wire.split(data, client.strict)
        del client.inbox[:consumed]
        client.skipped += skipped
        arrived = time.monotonic()
        frames = []
        unpack = record.RECORD.unpack_from
        for offset in offsets:
            timestamp_us, can_id, flags, dlc, _, _ = unpack(data, offset)
            # Other control commands travel to the other clients in frame order.
            if flags & record.FLAG_CONTROL and can_id == record.CONTROL_STATS:
                client.asked += 1  # answered once the frames before it are on the bus
                continue
            if flags & record.FLAG_CONTROL and can_id == record.CONTROL_CLAIM:
                self._claim(client, timestamp_us)
                continue
            raw = data[offset : offset + record.SIZE]
            bits = 0 if flags & record.FLAG_CONTROL else _FRAME_BITS[flags & _SHAPE][dlc]
            frames.append((timestamp_us, record.arbitration_key(can_id, flags), offset, raw, bits, arrived))
        # Frames this client queued with the same timestamp go out in
        # arbitration order; the client's own order is kept otherwise (a
        # timestamp jump backwards is the sender's business, not the bus's).
        start = 0
        for end in range(1, len(frames) + 1):
            if end == len(frames) or frames[end][0] != frames[start][0]:
                if end - start > 1:
                    frames[start:end] = sorted(frames[start:end], key=lambda f: (f[1], f[2]))
                start = end
        client.queue.extend(frames)
        self._watch(client)

    def _claim(self, client: _Client, pid: int) -> None:
        """Grant ``client`` the channel unless another connected client holds it."""
        owner = self.owner
        granted = owner is None or owner is client or owner.number not in self.clients
        if granted:
            self.owner, self.owner_pid = client, pid
        _queue_for(client, time.monotonic())
        client.outbox += wire.claim_answer(granted, self.owner_pid)  # sent once its socket has room (_watch)

    def _answer_stats(self, client: _Client) -> None:
        _queue_for(client, time.monotonic())
        client.outbox += stats_record(
            len(self.clients), self.frames, self.load(time.monotonic()), self.peak_load,
            client.dropped, -(-client.skipped // record.SIZE),
        )
        self._flush(client)

    def _transmit(self) -> None:
        touched: set = set()
        if self.bitrate:
            self._transmit_paced(touched)
        else:
            self._transmit_at_once(touched)
        for receiver in touched:
            if receiver.number in self.clients:
                self._flush(receiver)
        for client in list(self.clients.values()):
            if client.events & selectors.EVENT_READ == 0:
                self._watch(client)  # its queue may have room again

    def _transmit_at_once(self, touched: set) -> None:
        """Unpaced: everything queued goes now. The head of every client's
        queue competes: the earliest timestamp, then the lowest arbitration
        key wins (so merged streams stay in time order)."""
        busy = [c for c in self.clients.values() if c.queue]
        if not busy:
            return
        if len(busy) == 1:
            merged = [(busy[0].number, entry[3], entry[4]) for entry in busy[0].queue]
            busy[0].queue.clear()
        else:
            merged = []
            heads = [(c.queue[0][0], c.queue[0][1], c.number) for c in busy]
            heapq.heapify(heads)
            while heads:
                _, _, number = heapq.heappop(heads)
                queue = self.clients[number].queue
                entry = queue.popleft()
                merged.append((number, entry[3], entry[4]))
                if queue:
                    heapq.heappush(heads, (queue[0][0], queue[0][1], number))
        now = time.monotonic()
        self._count(now, sum(1 for _, _, bits in merged if bits), sum(bits for _, _, bits in merged))
        senders = {c.number for c in busy}
        everything = b"".join(raw for _, raw, _ in merged)
        for receiver in self.clients.values():
            if receiver.number in senders:
                blob = b"".join(raw for number, raw, _ in merged if number != receiver.number)
            else:
                blob = everything
            self._deliver(receiver, blob, now, touched)

    def _transmit_paced(self, touched: set) -> None:
        """Paced: when the bus goes free, every client with a frame there by
        then arbitrates and the lowest identifier wins, whatever the frames'
        timestamps say (an early-stamped flood cannot starve a higher-priority
        frame). Bus time, not wake-up time: a frame starts when the bus went
        free (or when it arrived), however late this loop woke up."""
        now = time.monotonic()
        while True:
            heads = [c for c in self.clients.values() if c.queue]
            if not heads:
                return
            start = max(self._bus_free_at, min(c.queue[0][5] for c in heads))
            if start > now:
                return
            sender = min(
                (c for c in heads if c.queue[0][5] <= start),
                key=lambda c: (c.queue[0][1], c.queue[0][0], c.number),
            )
            self._bus_free_at = start + self._put_on_bus(sender, start, now, touched) / self.bitrate

    def _put_on_bus(self, sender: _Client, start: float, now: float, touched: set) -> int:
        """The head of ``sender``'s queue to every other client; its bits."""
        _, _, _, raw, bits, _ = sender.queue.popleft()
        if bits:
            self._count(start, 1, bits)
        for receiver in self.clients.values():
            if receiver is not sender:
                self._deliver(receiver, raw, now, touched)
        return bits

    def _deliver(self, receiver: _Client, records: bytes, now: float, touched: set) -> None:
        """Queue ``records`` for ``receiver``; one that stopped reading keeps
        what fits in its queue and loses (and counts) the newer frames."""
        if receiver.stalled:
            room = max(0, self.limit_bytes - len(receiver.outbox)) // record.SIZE * record.SIZE
            if room < len(records):
                receiver.dropped += (len(records) - room) // record.SIZE
                records = records[:room]
        if not records:
            return
        _queue_for(receiver, now)
        receiver.outbox += records
        touched.add(receiver)

    def _flush(self, client: _Client) -> None:
        if client.outbox:
            try:
                sent = client.sock.send(client.outbox)
                del client.outbox[:sent]
                if sent:
                    client.progress_at = time.monotonic()
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(client)
                return
        self._watch(client)


def _queue_for(client: _Client, now: float) -> None:
    """About to queue bytes for ``client``: its wait for room starts now if
    nothing was waiting before."""
    if not client.outbox:
        client.progress_at = now


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m keidrive.vbus.hub")
    parser.add_argument("channel")
    parser.add_argument("--bitrate", type=int, default=None, help="pace the bus at this bitrate")
    parser.add_argument("--linger", type=float, default=2.0, help="seconds to live after the last client leaves")
    parser.add_argument(
        "--queue-limit", type=int, default=QUEUE_LIMIT, metavar="FRAMES",
        help=f"frames waiting for one receiver before it holds the bus (default {QUEUE_LIMIT})",
    )
    parser.add_argument(
        "--stall", type=float, default=STALL_S, metavar="SECONDS",
        help=f"a receiver whose socket takes nothing this long with a full queue drops frames (default {STALL_S})",
    )
    args = parser.parse_args(argv)
    try:
        hub = Hub(
            socket_path(args.channel), bitrate=args.bitrate, linger=args.linger,
            queue_limit=args.queue_limit, stall_s=args.stall,
        )
    except KeidriveError as error:
        sys.exit(f"keidrive hub: error: {error}")
    hub.serve()


if __name__ == "__main__":
    main()
