"""A small MQTT 3.1.1 client that never blocks the firmware's loop.

Every step is non-blocking and short: DNS (keifw/dns.py, one UDP query at a
time), the TCP connect (EINPROGRESS, then poll), the TLS handshake (driven by
the writes of CONNECT on a non-blocking socket), writes (what the socket
takes now; the rest on the next step) and reads (what has arrived). ``step``
runs it all once a tick. A connection that stops answering is dropped: no
CONNACK within 15 s, a ping unanswered for 10 s, a PUBLISH unacknowledged or
a send buffer that takes nothing for 20 s; it is tried again after an
exponential back-off (1 s doubling to 60 s, or the config's
``mqtt_backoff_max_s``) with jitter (a random half of
it). Times are real milliseconds: the network is real even when the
firmware's own clock is a drive's timestamps.

Buffers are allocated once: ``tx`` holds one packet, its payload at a fixed
offset (HEAD_ROOM) so a caller reads a message straight into it and the
header is written in front; ``rx`` the small packets a publisher receives
(CONNACK, PUBACK, PINGRESP). Connecting allocates (socket, TLS context,
CONNECT); publishing, acknowledging and idling do not.

Why not a library client: micropython-lib's umqtt.simple blocks in connect
and waits in a loop for each PUBACK; umqtt.robust reconnects by blocking;
mqtt_as needs asyncio and builds each message as new objects. See
docs/uplink.md.
"""

from micropython import const

from .compat import MICROPYTHON

# states
OFF = const(0)  # stopped, or no network on this board
WAIT = const(1)  # backing off until ``retry_at``
DNS = const(2)
TCP = const(3)
CONNACK = const(4)  # CONNECT queued (TLS handshakes through its writes), waiting for CONNACK
UP = const(5)
STATE_NAMES = ("off", "waiting", "resolving", "connecting", "handshaking", "connected")

HEAD_ROOM = const(128)  # room in front of the payload for the PUBLISH header and topic
CONNECT_MS = const(15000)
PING_WAIT_MS = const(10000)
STALL_MS = const(20000)
DNS_MS = const(3000)
BACKOFF_MIN_MS = const(1000)
BACKOFF_MAX_MS = const(60000)
_RX = const(32)

_EINPROGRESS = (115, 119, 36)  # Linux, lwIP, BSD / macOS

import time as _time

if not MICROPYTHON:  # CPython: the SIL's cpython runtime
    import ssl as _ssl

    _WOULD_BLOCK = (BlockingIOError, _ssl.SSLWantReadError, _ssl.SSLWantWriteError)


def now_ms() -> int:
    if MICROPYTHON:
        return _time.ticks_ms()  # pyright: ignore  (MicroPython's time: an int of its wrapping clock)
    return int(_time.monotonic() * 1000)  # pyright: ignore[reportAttributeAccessIssue]  (CPython's time)


def since(t):
    """Milliseconds from t (a now_ms()) to now."""
    if MICROPYTHON:
        return _time.ticks_diff(_time.ticks_ms(), t)  # pyright: ignore[reportAttributeAccessIssue]
    return now_ms() - t


def later(ms):
    """now_ms() in ms milliseconds."""
    if MICROPYTHON:
        return _time.ticks_add(_time.ticks_ms(), ms)  # pyright: ignore[reportAttributeAccessIssue]
    return now_ms() + ms


def _write(sock, buf, off, n):
    """Bytes the socket took now (0 if none: it would block)."""
    if MICROPYTHON:
        r = sock.write(buf, off, n)
        return 0 if r is None else r
    try:
        return sock.send(memoryview(buf)[off:off + n])
    except _WOULD_BLOCK:
        return 0


def _read(sock, buf):
    """Bytes read into buf; None if none has come, 0 at the end of the stream."""
    if MICROPYTHON:
        return sock.readinto(buf)
    try:
        return sock.recv_into(buf)
    except _WOULD_BLOCK:
        return None


def random_below(n):
    """0 <= r < n (0 < n < 2**24): jitter and starting points, not cryptography."""
    try:
        import os

        b = os.urandom(3)
        return (b[0] << 16 | b[1] << 8 | b[2]) % n
    except (ImportError, AttributeError, NotImplementedError, OSError):
        return now_ms() % n


def _ipv4(host):
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


class Client:
    """One connection to one broker. ``on_ack(pid)`` is called for each
    PUBACK, ``on_change(state, why)`` when the connection comes up or goes
    down (why: a short reason, b"" when up). ``connect(host, port)`` opens
    the socket (default: TCP; tests and benches give their own) and
    ``link_up()`` says whether the network is there (Wi-Fi)."""

    def __init__(self, client_id, host, port, tls=False, user=None, password=None, ca=None, keepalive_s=60,
                 will_topic=None, payload_max=1280, dns_server=None, on_ack=None, on_change=None, connect=None, link_up=None,
                 backoff_max_ms=BACKOFF_MAX_MS):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.tls = tls
        self.user = user
        self.password = password
        self.ca = ca  # the CA certificate (DER), or None: no check
        self.keepalive_s = keepalive_s
        self.will_topic = will_topic
        self.dns_server = dns_server
        self.on_ack = on_ack
        self.on_change = on_change
        self.open_socket = connect or _open_socket
        self.link_up = link_up  # Wi-Fi: whether the network is there yet
        self.backoff_max_ms = backoff_max_ms
        self.tx = bytearray(HEAD_ROOM + payload_max)
        self.payload_max = payload_max
        self.rx = bytearray(2 * _RX)  # what has arrived and is not parsed yet
        self.inb = bytearray(_RX)  # each read lands here first
        self.rx_n = 0
        self.skip = 0  # bytes of a packet we do not take (too large for rx), still to discard
        self.o = 0  # send position in tx
        self.e = 0  # end of what is queued in tx
        self.sock = None
        self.poller = None
        self.resolver = None
        self.addr = None
        self.state = WAIT
        self.retry_at = now_ms()
        self.wait_ms = 0
        self.failures = 0  # in a row: the back-off's exponent
        self.started = 0  # when this connection attempt (or the send in tx) started
        self.last_out = 0  # last time bytes went out
        self.started_send = 0  # when the bytes in tx were queued or last moved
        self.ping_at = -1  # when the unanswered PINGREQ went out (-1: none)
        self.pid = 0
        self.connects = 0
        self.drops = 0
        self.why = b""

    # ---- what the owner calls --------------------------------------------
    @property
    def up(self):
        return self.state == UP

    def idle(self):
        """Up with nothing being written: a PUBLISH may be queued."""
        return self.state == UP and self.o >= self.e

    def publish(self, topic, n, qos=1, retain=False):
        """Send the n payload bytes already in tx at HEAD_ROOM under ``topic``
        (bytes); the packet id (0 for QoS 0). Only when idle()."""
        pid = 0
        tx = self.tx
        o = HEAD_ROOM
        if qos:
            self.pid = pid = self.pid % 65535 + 1
            tx[o - 2] = pid >> 8
            tx[o - 1] = pid & 0xFF
            o -= 2
        k = len(topic)
        o -= k + 2
        tx[o] = k >> 8
        tx[o + 1] = k & 0xFF
        tx[o + 2:o + 2 + k] = topic
        self._queue(_header(tx, o, 0x30 | (qos << 1) | (1 if retain else 0), HEAD_ROOM + n - o), HEAD_ROOM + n)
        self._flush()  # what the socket takes now (a failure drops the connection: the caller looks at ``up``)
        return pid

    def step(self):
        """Drive the connection once: never waits."""
        s = self.state
        if s == UP:
            self._up()
        elif s == WAIT:
            if since(self.retry_at) >= 0:
                self._start()
        elif s == CONNACK:
            self._flush()
            self._receive()
            if self.state == CONNACK and since(self.started) > CONNECT_MS:
                self._drop(b"no CONNACK within 15 s")
        elif s == TCP:
            self._tcp()
        elif s == DNS:
            self._dns()

    def disconnect(self):
        """A clean DISCONNECT (the broker then sends no last will)."""
        if self.state == UP and self.o >= self.e:
            self.tx[0] = 0xE0
            self.tx[1] = 0
            self._queue(0, 2)
            self._flush()
        self._close()
        self.state = OFF

    def stop(self, why):
        self._close()
        self.state = OFF
        self.why = why

    # ---- connecting ------------------------------------------------------
    def _start(self):
        if self.link_up is not None and not self.link_up():
            self.retry_at = later(1000)  # no network yet: look again in a second
            self.why = b"no network yet"
            return
        self.started = now_ms()
        if self.addr is not None or _ipv4(self.host) or self.host == "localhost":
            if self.addr is None:
                self.addr = "127.0.0.1" if self.host == "localhost" else self.host
            self._connect()
            return
        from .dns import Resolver

        if self.resolver is None:
            self.resolver = Resolver(self.dns_server)
        why = self.resolver.query(self.host, self.tx)
        if why:
            self._fail(why)
            return
        self.state = DNS

    def _dns(self):
        resolver = self.resolver
        if resolver is None:
            return
        addr = resolver.answer(self.tx)
        if addr is None:
            if since(self.started) > DNS_MS:
                resolver.close()
                self._fail(b"DNS: no answer within 3 s")
            return
        if isinstance(addr, bytes):  # why it failed
            self._fail(addr)
            return
        self.addr = addr  # kept while connections to it work
        self._connect()

    def _connect(self):
        try:
            self.sock, self.poller = self.open_socket(self.addr, self.port)
        except OSError as e:
            self._fail(b"connect: " + str(e).encode())
            return
        self.state = TCP

    def _tcp(self):
        ev = _events(self.poller)
        if ev & 0x18:  # POLLERR | POLLHUP: refused, unreachable
            self._fail(b"connect: refused or unreachable")
            return
        if ev & 0x04:  # POLLOUT: connected
            self.poller = None
            try:
                if self.tls:
                    self._wrap()
                e = self._connect_packet()
                self._queue(self.o, e)
            except (OSError, ValueError) as e:
                self._fail(b"TLS: " + str(e).encode())
                return
            self.state = CONNACK
            self._flush()
            return
        if since(self.started) > CONNECT_MS:
            self._fail(b"connect: no answer within 15 s")

    def _wrap(self):
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=self.ca)
        else:
            if not MICROPYTHON:
                ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.host,  # pyright: ignore[reportArgumentType]
                                    do_handshake_on_connect=False)

    def _connect_packet(self):
        """CONNECT into tx (from byte 4; its header in front): its end.
        Clean session; the last will ``false``, retained, QoS 1."""
        tx = self.tx
        o = 4
        tx[o:o + 7] = b"\x00\x04MQTT\x04"
        flags = 0x02
        if self.will_topic is not None:
            flags |= 0x04 | 0x08 | 0x20  # will, will QoS 1, will retain
        if self.user is not None:
            flags |= 0x80
            if self.password is not None:
                flags |= 0x40
        tx[o + 7] = flags
        tx[o + 8] = self.keepalive_s >> 8
        tx[o + 9] = self.keepalive_s & 0xFF
        o += 10
        for field in (self.client_id, self.will_topic, b"false" if self.will_topic is not None else None,
                      self.user, self.password):
            if field is not None:
                tx[o] = len(field) >> 8
                tx[o + 1] = len(field) & 0xFF
                tx[o + 2:o + 2 + len(field)] = field
                o += 2 + len(field)
        self.o = _header(tx, 4, 0x10, o - 4)
        return o

    # ---- connected -------------------------------------------------------
    def _up(self):
        self._flush()
        self._receive()
        if self.state != UP:
            return
        if self.ping_at >= 0:
            if since(self.ping_at) > PING_WAIT_MS:
                self._drop(b"ping unanswered for 10 s")
        elif self.o >= self.e and since(self.last_out) >= self.keepalive_s * 500:
            self.tx[0] = 0xC0
            self.tx[1] = 0
            self._queue(0, 2)
            self.ping_at = now_ms()
            self._flush()

    def _queue(self, o, e):
        """Send tx[o:e] (written over the next steps)."""
        self.o = o
        self.e = e
        self.started_send = now_ms()

    def _flush(self):
        o = self.o
        e = self.e
        if o >= e:
            return
        try:
            r = _write(self.sock, self.tx, o, e - o)
        except OSError as err:
            self._drop(b"send: " + str(err).encode())
            return
        if r:
            self.o = o + r
            self.last_out = self.started_send = now_ms()
        elif since(self.started_send) > STALL_MS:
            self._drop(b"send buffer full for 20 s")

    def _receive(self):
        try:
            n = _read(self.sock, self.inb)
        except OSError as err:
            self._drop(b"receive: " + str(err).encode())
            return
        if n is None:
            return
        if n == 0:
            self._drop(b"closed by the broker")
            return
        rx = self.rx
        inb = self.inb
        o = self.rx_n  # below _RX: _parse leaves less than one small packet
        for k in range(n):
            rx[o + k] = inb[k]
        self.rx_n = o + n
        self._parse()

    def _parse(self):
        rx = self.rx
        while self.rx_n:
            if self.skip:
                k = min(self.skip, self.rx_n)
                self._consume(k)
                self.skip -= k
                continue
            # fixed header and remaining length (up to 4 bytes)
            n = self.rx_n
            if n < 2:
                return
            remaining = 0
            shift = 0
            j = 1
            while True:
                if j >= n:
                    return
                b = rx[j]
                remaining |= (b & 0x7F) << shift
                j += 1
                if not b & 0x80:
                    break
                shift += 7
                if shift > 21:
                    self._drop(b"malformed packet from the broker")
                    return
            kind = rx[0] & 0xF0
            if j + remaining >= _RX:  # not a packet a publisher expects: discard it
                self._consume(min(n, j))
                self.skip = remaining
                continue
            if j + remaining > n:
                return
            self._packet(kind, rx[j] if remaining else 0, rx[j + 1] if remaining > 1 else 0)
            if self.state < CONNACK:
                return
            self._consume(j + remaining)
        self.ping_at = -1  # anything from the broker shows it is there

    def _packet(self, kind, b0, b1):
        if kind == 0x40:  # PUBACK
            if self.on_ack is not None:
                self.on_ack(b0 << 8 | b1)
        elif kind == 0x20:  # CONNACK: b1 the return code
            if self.state != CONNACK:
                return
            if b1:
                self._fail(b"refused by the broker: " + _REFUSED[min(b1, 6)])
                return
            self.state = UP
            self.failures = 0
            self.connects += 1
            self.ping_at = -1
            self.last_out = now_ms()
            self.why = b""
            if self.on_change is not None:
                self.on_change(UP, b"")

    def _consume(self, k):
        rx = self.rx
        n = self.rx_n - k
        for j in range(n):
            rx[j] = rx[j + k]
        self.rx_n = n

    # ---- failing ---------------------------------------------------------
    def _drop(self, why):
        """A connection that was up (or coming up) is given up."""
        self.drops += 1
        self._fail(why)

    def _fail(self, why):
        self._close()
        self.why = why
        if not _ipv4(self.host) and self.host != "localhost":
            self.addr = None  # a name is looked up again: its address may have moved
        self.failures += 1
        k = self.failures - 1 if self.failures < 8 else 7
        delay = min(BACKOFF_MIN_MS << k, self.backoff_max_ms)
        self.wait_ms = delay // 2 + random_below(delay // 2)
        self.retry_at = later(self.wait_ms)
        self.state = WAIT
        if self.on_change is not None:
            self.on_change(WAIT, why)

    def _close(self):
        sock = self.sock
        self.sock = None
        self.poller = None
        self.rx_n = 0
        self.skip = 0
        self.o = self.e = 0
        self.ping_at = -1
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def _header(tx, end, first, remaining):
    """The fixed header (``first``, the remaining length in 1..3 bytes of 7
    bits) written to end just before ``end``: where it starts."""
    k = 1 if remaining < 128 else 2 if remaining < 16384 else 3
    o = end - k
    x = remaining
    for j in range(k):
        tx[o + j] = (x & 0x7F) | (0x80 if j < k - 1 else 0)
        x >>= 7
    tx[o - 1] = first
    return o - 1


_REFUSED = (b"", b"protocol version", b"client id", b"server unavailable", b"bad user name or password",
            b"not authorised", b"unknown reason")


def _open_socket(host, port):
    """A non-blocking TCP socket connecting to ``host`` (an IPv4 address)
    and a poller watching it for writability."""
    import select
    import socket

    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]  # a literal address: no lookup
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(addr)
    except OSError as e:
        if e.args[0] not in _EINPROGRESS:
            sock.close()
            raise
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return sock, poller


def _events(poller):
    """The events the connecting socket has now (0: none yet)."""
    if MICROPYTHON:
        for _obj, ev in poller.ipoll(0):
            return ev
        return 0
    for _fd, ev in poller.poll(0):
        return ev
    return 0
