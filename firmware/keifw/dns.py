"""A DNS A-record lookup that never waits: one UDP query, polled.

``socket.getaddrinfo`` with a name blocks a board for as long as its DNS
takes to answer or time out (seconds), so the uplink asks the server itself:
``query`` sends the question, ``answer`` looks once for the reply. The
server is the config's ``dns_server`` (``a.b.c.d[:port]``), else the network's (ESP32 / Pico W:
``WLAN.ifconfig()``), else the first IPv4 ``nameserver`` of /etc/resolv.conf
(the unix port).
"""

_TYPE_A = 1
_CLASS_IN = 1


def default_server():
    try:
        import network

        return network.WLAN(network.STA_IF).ifconfig()[3]
    except (ImportError, AttributeError, OSError):
        pass
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver" and parts[1].count(".") == 3:
                    return parts[1]
    except OSError:
        pass
    return None


class Resolver:
    def __init__(self, server=None):
        self.server = server
        self.sock = None
        self.id = 0
        self.qlen = 0

    def query(self, name, buf):
        """Send the question for ``name``'s address (``buf``: scratch of at
        least 300 bytes). None, or why it could not be sent."""
        import socket

        server = self.server or default_server()
        if server is None:
            return b"DNS: no server known (set dns_server)"
        self.close()
        from .mqtt import random_below

        self.id = random_below(65535) + 1  # unpredictable: a spoofed answer must guess it
        o = _question(buf, self.id, name)
        if o < 0:
            return b"DNS: the name is too long"
        self.qlen = o
        port = 53
        if ":" in server:
            server, port = server.split(":")
            port = int(port)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.sendto(bytes(buf[:o]), socket.getaddrinfo(server, port, 0, socket.SOCK_DGRAM)[0][-1])
        except OSError as e:
            return b"DNS: " + str(e).encode()
        self.sock = sock
        return None

    def answer(self, buf):
        """The address (str) once the reply is in; None while none has come;
        bytes saying why it failed."""
        sock = self.sock
        if sock is None:
            return b"DNS: no query"
        try:
            data = sock.recv(512)
        except OSError as e:
            if e.args[0] in (11, 35):  # EAGAIN: nothing yet
                return None
            self.close()
            return b"DNS: " + str(e).encode()
        if data is None:
            return None
        found = parse_answer(data, self.id, self.qlen)
        if found is None:  # another id, or not a reply: wait for ours
            return None
        self.close()
        return found

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def _question(buf, qid, name):
    """A recursive A IN query for ``name`` into buf: its length, or -1."""
    head = (qid >> 8, qid & 0xFF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0)  # RD; one question
    for k in range(12):
        buf[k] = head[k]
    o = 12
    for label in name.split("."):
        b = label.encode()
        if not 0 < len(b) < 64 or o + len(b) + 6 > 300:
            return -1
        buf[o] = len(b)
        buf[o + 1:o + 1 + len(b)] = b
        o += 1 + len(b)
    buf[o:o + 5] = b"\x00\x00\x01\x00\x01"
    return o + 5


def _skip_name(data, o):
    while o < len(data):
        n = data[o]
        if n & 0xC0 == 0xC0:
            return o + 2
        if n == 0:
            return o + 1
        o += 1 + n
    return len(data)


def parse_answer(data, qid, qlen):
    """The first A record's address of a reply to query ``qid`` (str); bytes
    saying why there is none; None if data is not that reply."""
    if len(data) < 12 or (data[0] << 8 | data[1]) != qid or not data[2] & 0x80:
        return None
    rcode = data[3] & 0x0F
    if rcode:
        return b"DNS: no such name" if rcode == 3 else b"DNS: server failure (rcode %d)" % rcode
    count = data[6] << 8 | data[7]
    o = qlen
    for _ in range(count):
        o = _skip_name(data, o)
        if o + 10 > len(data):
            break
        kind = data[o] << 8 | data[o + 1]
        klass = data[o + 2] << 8 | data[o + 3]
        n = data[o + 8] << 8 | data[o + 9]
        o += 10
        if kind == _TYPE_A and klass == _CLASS_IN and n == 4 and o + 4 <= len(data):
            return "%d.%d.%d.%d" % (data[o], data[o + 1], data[o + 2], data[o + 3])
        o += n
    return b"DNS: no address in the answer"
