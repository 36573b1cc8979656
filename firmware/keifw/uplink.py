"""The uplink: the firmware's telemetry to an MQTT broker, nothing lost offline.

``attach(fw, cfg, data_dir)`` (keifw/app.py, when ``mqtt_url`` is set) puts
it on the loop: a tee on the telemetry stream picks the lines that are
events (warning, signal, info, error) and the trip summary; once a second
of firmware time it decides on a status (every ``uplink_status_s`` while
driving, and whenever driving, the active warnings or the bus state change)
and a trip snapshot (every ``uplink_trip_min`` while driving, after a minute
parked, at the end of input), formatted by lines.py itself without printing
them. Every message is the telemetry line with an envelope in front
(``v``, ``device``, ``boot``, ``seq``, ``trip``; docs/uplink.md), written
to the flash journal (keifw/journal.py) and published from there, QoS 1, on
``keidrive/<device>/status|event|trip``; it leaves the journal only once the
broker has acknowledged it. ``keidrive/<device>/online`` is ``true``
(retained) while connected, the last will ``false``; Home Assistant
discovery configs are published (retained) on every connect.

The loop's cost: one call per 10 Hz tick that counts and returns while there
is nothing to do (the network looked at once a second); while connecting or
sending, one non-blocking step of the client per tick (keifw/mqtt.py).
"""

import micropython
from micropython import const

from . import alerts as _alerts
from . import journal as _journal
from . import lines
from . import mqtt as _mqtt
from . import scan as _scan
from .compat import MICROPYTHON
from .journal import EVENT, HEADER, STATUS, TRIP

VERSION = const(1)  # the message schema's version (docs/uplink.md)
MAX_MESSAGE = const(1536)  # bytes of one message's JSON
WINDOW = const(4)  # PUBLISH packets awaiting their PUBACK
_IDLE_TICKS = const(10)  # nothing to send: the network once a second
_PARKED_S = const(60)  # parked this long after driving: the trip so far goes out
_O_SPEED_OK = const(0)
_O_RUNNING = const(9)
_P_STOPPED = const(14)
_C_VIRTUAL = const(3)  # the scanner's ctx word: the clock is the records' (asserted below)
TOPICS = (b"status", b"event", b"trip")
assert _scan.C_VIRTUAL == _C_VIRTUAL
STATE_FILE = "state"


def attach(fw, cfg, data_dir, connect=None):
    """The uplink on ``fw`` (``fw.uplink``), or None after one line saying
    why it cannot run here (no network on this board, no data folder)."""
    link_up, why = _network(cfg) if connect is None else (None, None)
    if why is None and not data_dir:
        why = "no data folder for its journal"
    if why is None:
        why = _check_url(cfg)
    if why is not None:
        _line(fw.w, b"off", why.encode())
        return None
    up = Uplink(fw, cfg, data_dir, link_up, connect)
    fw.uplink = up
    fw.on_tick(up.tick)
    up.boot_event()
    return up


class Tee:
    """The telemetry stream, with each line also shown to the uplink. A line
    the Writer sends in pieces (past telemetry.FLUSH_AT: a trip line with
    its warning log) is joined here first, in a buffer of its own."""

    def __init__(self, out, uplink):
        self.out = out
        self.uplink = uplink
        self.quiet = False  # a line the uplink asked for: not printed
        self.held = bytearray(MAX_MESSAGE)  # the pieces of a line so far
        self.n_held = 0  # -1: the line outgrew held (dropped at its end, counted too large)

    def write(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        if not self.quiet and self.out is not None:
            if MICROPYTHON:
                self.out.write(buf, n)
            else:
                self.out.write(buf[:n])
        if not n:
            return n
        if not MICROPYTHON:  # CPython hands a memoryview of the Writer's buffer
            buf = bytes(buf[:n])
        whole = buf[n - 1] == 10
        if not whole or self.n_held:
            h = self.n_held
            if h >= 0 and h + n <= MAX_MESSAGE:
                _copy(self.held, h, buf, 0, n)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
                self.n_held = h + n
            else:
                self.n_held = -1
            if not whole:
                return n
            h = self.n_held
            self.n_held = 0
            if h < 0:
                self.uplink.too_large += 1
                return n
            buf = self.held
            n = h
        self.uplink.capture(buf, n, self.quiet)
        return n


class Uplink:
    def __init__(self, fw, cfg, data_dir, link_up=None, connect=None):
        self.fw = fw
        self.cfg = cfg
        self.device = _device_id(cfg).encode()
        self.journal = _journal.Journal(data_dir.rstrip("/") + "/uplink", cfg["uplink_journal_kib"] * 1024)
        self.boot, self.trip_id = _boot_state(self.journal.dir, fw.restored)
        self.seq = 0
        tls, host, port = _url(cfg["mqtt_url"])
        prefix = b"keidrive/" + self.device + b"/"
        self.topics = tuple(prefix + t for t in TOPICS)
        self.online = prefix + b"online"
        self.client = _mqtt.Client(
            self.device, host, port, tls=tls, user=_b(cfg["mqtt_username"]), password=_b(cfg["mqtt_password"]),
            ca=_ca(cfg["mqtt_ca"]), keepalive_s=cfg["mqtt_keepalive_s"], will_topic=self.online,
            payload_max=MAX_MESSAGE + _journal.TRAILER, dns_server=cfg["dns_server"], on_ack=self._ack,
            on_change=self._changed, connect=connect, link_up=link_up,
            backoff_max_ms=cfg["mqtt_backoff_max_s"] * 1000)
        self.rec = bytearray(HEADER + MAX_MESSAGE + _journal.TRAILER)
        self.tee = Tee(fw.w.stream, self)
        fw.w.stream = self.tee
        # PUBLISH packets in flight, oldest first: packet id, class, where the record ends
        self.in_pid = [0] * WINDOW
        self.in_cls = bytearray(WINDOW)
        self.in_seg = [0] * WINDOW
        self.in_end = [0] * WINDOW
        self.in_acked = bytearray(WINDOW)
        self.in_first = 0
        self.in_n = 0
        self.controls = 0  # the retained messages of this connection still to send (online, discovery)
        self.n_discovery = len(_discovery_table(cfg, fw.kind)) if cfg["ha_discovery"] else 0
        self.k = 0  # ticks since the last step
        self.every = 1
        self.polled = _mqtt.now_ms() - 2  # when the network was last looked at (real ms)
        self.next_ds = 0  # the next once-a-second look (trip ticks)
        self.driving = 0
        self.hold_tls = tls and cfg["mqtt_tls_parked"]
        self.status_age = 0  # seconds since the last status message
        self.trip_age = 0  # seconds driven since the last trip message
        self.parked_s = 0
        self.trip_sent = True  # no driving since the last trip message
        self.signature = -1
        self.sent = 0
        self.acked = 0
        self.too_large = 0
        self.journal_errors = 0

    # ---- the loop --------------------------------------------------------
    def tick(self, t_ds):
        """Every 10 Hz tick: a count, and the work once it is due."""
        self.k += 1
        if self.k >= self.every:
            self._step(t_ds)

    def _step(self, t_ds):
        self.k = 0
        if t_ds >= self.next_ds:
            self.next_ds = t_ds + 10
            self._second()
        # on the drive's own clock (lockstep: ticks thousands a second of real
        # time) the network at most every 2 ms, not a system call per tick
        # while a message is in flight; on a real clock every tick
        if not self.fw.ctx[_C_VIRTUAL] or _mqtt.since(self.polled) >= 2:
            self.polled = _mqtt.now_ms()
            self._pump()
        busy = self.client.state != _mqtt.UP or self.in_n or self.controls or self.journal.queued()
        # connecting (it has a deadline but no back-off wait of its own) or
        # sending: every tick; waiting out a back-off or idle: once a second
        self.every = 1 if busy and self.client.state != _mqtt.WAIT else _IDLE_TICKS

    def _pump(self):
        if self.hold_tls and self.driving and self.client.state == _mqtt.WAIT:
            return  # mqtt_tls_parked: no handshake while the CAN bus is busy
        self.client.step()
        if self.client.state == _mqtt.UP:
            self._send()

    def _second(self):
        """Once a second of firmware time: statuses and trip snapshots due."""
        fw = self.fw
        o = fw.o
        moving = o[_O_SPEED_OK] and not fw.ep[_P_STOPPED]
        obd = fw.obd
        if obd is not None and obd.integ.have_prev and obd.integ.v_prev > 0:
            moving = True
        driving = 1 if moving or o[_O_RUNNING] else 0
        self.driving = driving
        signature = driving | fw.bus_state << 1
        alarms = fw.alerts.alarms
        for k in range(_alerts.N_KINDS):
            if alarms[k].active:
                signature |= 1 << (8 + k)
        status = signature != self.signature
        self.signature = signature
        self.status_age += 1
        if driving:
            self.parked_s = 0
            self.trip_sent = False
            self.trip_age += 1
            status = status or self.status_age >= self.cfg["uplink_status_s"]
            if self.trip_age >= self.cfg["uplink_trip_min"] * 60:
                self._own(TRIP)
        else:
            self.parked_s += 1
            if self.parked_s >= _PARKED_S and not self.trip_sent:
                self._own(TRIP)  # parked: the trip so far (a board's trip end)
        if status:
            self._own(STATUS)

    def _own(self, cls):
        """A status or trip line formatted for the uplink, not printed."""
        tee = self.tee
        tee.quiet = True
        try:
            if cls == STATUS:
                self.status_age = 0
                lines.status(self.fw)
            else:
                self.trip_age = 0
                self.trip_sent = True
                lines.trip(self.fw, False)
        finally:
            tee.quiet = False

    # ---- lines in ----------------------------------------------------------
    def capture(self, buf, n, own):
        """A telemetry line (``own``: formatted for the uplink): journal it
        if it is a message. Event lines are all of them but status, trip and
        the uplink's own; statuses and trips only those it asked for (the
        trip summary at the end too: ``finish``)."""
        if n < 12:
            return
        c = buf[9]
        if c == 117:  # "u": the uplink's own lines
            return
        if c == 115 and buf[10] == 116:  # "st": status
            if own:
                self._journal(STATUS, buf, n)
        elif c == 116:  # "t": trip
            if own:
                self._journal(TRIP, buf, n)
        else:
            self._journal(EVENT, buf, n)

    def _journal(self, cls, line, n):
        """The line (``{...}\\n``, n bytes) with the envelope in front into
        the journal."""
        rec = self.rec
        o = HEADER
        end = HEADER + MAX_MESSAGE
        o = _put(rec, o, b'{"v":')
        o = _int(rec, o, VERSION)
        o = _put(rec, o, b',"device":"')
        o = _put(rec, o, self.device)
        o = _put(rec, o, b'","boot":')
        o = _int(rec, o, self.boot)
        o = _put(rec, o, b',"seq":')
        o = _int(rec, o, self.seq)
        o = _put(rec, o, b',"trip":')
        o = _int(rec, o, self.trip_id)
        o = _put(rec, o, b",")
        if cls == STATUS:
            o = self._counters(rec, o)
        body = 1  # the line without its "{" and its newline
        last = n - 1
        if cls == TRIP:
            # the warning log's entries go as events; the trip carries their count by kind
            a = line.find(b'"warnings":[', 0, n)  # (line may be the Tee's buffer: its first n bytes)
            b = line.find(b"]", a, n) if a >= 0 else -1
            if b > a >= 0 and o + (a - body) + 160 < end:
                _copy(rec, o, line, body, a - body)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
                o += a - body
                o = self._by_kind(rec, o)
                body = b + 1
        if o + last - body > end:
            self.too_large += 1
            return
        _copy(rec, o, line, body, last - body)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
        o += last - body
        drain = getattr(self.fw.port, "drain", None)
        if drain is not None:
            drain()  # the CAN controller's buffers emptied before the flash write
        try:
            if self.journal.append(cls, rec, o - HEADER):
                self.seq += 1
        except OSError:
            self.journal_errors += 1
        self.every = 1

    def _counters(self, rec, o):
        j = self.journal
        o = _put(rec, o, b'"uplink":{"queued":')
        o = _int(rec, o, j.queued())
        o = _put(rec, o, b',"dropped_status":')
        o = _int(rec, o, j.dropped(STATUS))
        o = _put(rec, o, b',"dropped_event":')
        o = _int(rec, o, j.dropped(EVENT))
        o = _put(rec, o, b',"dropped_trip":')
        o = _int(rec, o, j.dropped(TRIP))
        o = _put(rec, o, b',"corrupt":')
        o = _int(rec, o, j.corrupt)
        return _put(rec, o, b"},")

    def _by_kind(self, rec, o):
        al = self.fw.alerts
        log = al.log
        o = _put(rec, o, b'"warnings_by_kind":{')
        first = True
        for k in range(_alerts.N_KINDS):
            count = 0
            for j in range(al.log_n):
                if log[j * 4] == k:
                    count += 1
            if count:
                if not first:
                    o = _put(rec, o, b",")
                first = False
                o = _put(rec, o, b'"')
                o = _put(rec, o, _alerts.KINDS[k])
                o = _put(rec, o, b'":')
                o = _int(rec, o, count)
        return _put(rec, o, b"}")

    def boot_event(self):
        """The first event of a boot: why it booted, whether the trip was restored."""
        w = self.fw.w
        w.begin(b'"type":"boot"')
        w.kstr(b'"reset_cause":', _reset_cause())
        w.key(b'"restored":')
        w.raw(b"true" if self.fw.restored else b"false")
        # through the uplink only: the telemetry has its own trip_restored info line
        self.tee.quiet = True
        try:
            w.end()
        finally:
            self.tee.quiet = False

    # ---- messages out ------------------------------------------------------
    def _send(self):
        c = self.client
        j = self.journal
        tx = c.tx
        at = _mqtt.HEAD_ROOM
        while c.idle() and self.in_n < WINDOW:
            if self.controls:
                self._control(tx, at)
                continue
            cls = TRIP
            while cls >= 0 and not j.unsent(cls):
                cls -= 1
            if cls < 0:
                return
            n = j.read(cls, tx, at)
            if n < 0:
                continue
            pid = c.publish(self.topics[cls], n, 1, False)
            if c.state != _mqtt.UP:
                return  # the write failed and the connection went down: the record goes again (rewound)
            i = (self.in_first + self.in_n) % WINDOW
            self.in_pid[i] = pid
            self.in_cls[i] = cls
            self.in_seg[i] = j.last_seg
            self.in_end[i] = j.last_end
            self.in_acked[i] = 0
            self.in_n += 1
            self.sent += 1

    def _control(self, tx, at):
        """The next retained message of a new connection: ``online`` true,
        then the discovery configs (QoS 0: sent again on every connect)."""
        k = self.n_discovery + 1 - self.controls
        self.controls -= 1
        if k == 0:
            tx[at:at + 4] = b"true"
            self.client.publish(self.online, 4, 1, True)
            return
        entry = _discovery_table(self.cfg, self.fw.kind)[k - 1]  # made again (a connect's allocation), not kept
        topic, payload = _discovery(entry, self.device, self.cfg["vehicle"])
        if len(payload) > MAX_MESSAGE:
            return
        tx[at:at + len(payload)] = payload
        self.client.publish(topic, len(payload), 0, True)

    def _ack(self, pid):
        """A PUBACK: its message, and every one before it acknowledged too,
        leaves the journal."""
        n = self.in_n
        i = self.in_first
        for _ in range(n):
            if self.in_pid[i] == pid:
                self.in_acked[i] = 1
                break
            i = (i + 1) % WINDOW
        while self.in_n and self.in_acked[self.in_first]:
            i = self.in_first
            self.journal.ack(self.in_cls[i], self.in_seg[i], self.in_end[i])
            self.in_first = (i + 1) % WINDOW
            self.in_n -= 1
            self.acked += 1

    def _changed(self, state, why):
        if state == _mqtt.UP:
            self.controls = 1 + self.n_discovery
            _line(self.fw.w, b"connected", self.cfg["mqtt_url"].encode(), key=b'"broker":')
            return
        # down: what was in flight goes again on the next connection
        self.in_n = 0
        self.journal.rewind()
        _line(self.fw.w, b"waiting", why, self.client.wait_ms)

    # ---- end of input ------------------------------------------------------
    def finish(self):
        """End of input (the SIL): wait up to ``uplink_flush_s`` (real time)
        for the broker to acknowledge what the journal holds, then say
        goodbye and what became of the messages."""
        import time

        self._own(TRIP)  # the trip summary, without the warning log its events carried
        c = self.client
        self.hold_tls = False  # the end of input: no frames left to lose
        t0 = _mqtt.now_ms()
        limit = self.cfg["uplink_flush_s"] * 1000
        while _mqtt.since(t0) < limit:
            if c.state == _mqtt.UP and not self.in_n and not self.controls and not self.journal.queued():
                break
            self._pump()
            try:
                time.sleep_ms(2)  # pyright: ignore[reportAttributeAccessIssue]  (MicroPython's time)
            except AttributeError:
                time.sleep(0.002)
        if c.state == _mqtt.UP and c.idle():
            at = _mqtt.HEAD_ROOM
            c.tx[at:at + 5] = b"false"
            c.publish(self.online, 5, 0, True)
            c.step()
        c.disconnect()
        self.summary()

    def summary(self):
        j = self.journal
        w = self.fw.w
        w.begin(b'"type":"uplink"')
        w.kstr(b'"state":', b"summary")
        for key, value in ((b'"sent":', self.sent), (b'"acked":', self.acked), (b'"queued":', j.queued()),
                           (b'"dropped_status":', j.dropped(STATUS)), (b'"dropped_event":', j.dropped(EVENT)),
                           (b'"dropped_trip":', j.dropped(TRIP)), (b'"corrupt":', j.corrupt),
                           (b'"too_large":', self.too_large), (b'"journal_writes":', j.writes),
                           (b'"journal_bytes":', j.used()), (b'"journal_errors":', self.journal_errors),
                           (b'"connects":', self.client.connects),
                           (b'"drops":', self.client.drops), (b'"boot":', self.boot), (b'"seq":', self.seq)):
            w.kfix(key, value, 0)
        w.end()


# ---- helpers -----------------------------------------------------------------
@micropython.viper
def _copy(dst: ptr8, o: int, src: ptr8, s: int, n: int):
    for k in range(n):
        dst[o + k] = src[s + k]


def _put(buf, o, b):
    n = len(b)
    buf[o:o + n] = b
    return o + n


def _int(buf, o, x):
    """x >= 0 in decimal at buf[o:]; the end."""
    n = 1
    y = x
    while y >= 10:
        y //= 10
        n += 1
    e = o + n
    for k in range(n):
        buf[e - 1 - k] = 48 + x % 10
        x //= 10
    return e


def _line(w, state, why, wait_ms=-1, key=b'"why":'):
    """An ``uplink`` telemetry line (not sent to the broker)."""
    w.begin(b'"type":"uplink"')
    w.kstr(b'"state":', state)
    if why:
        w.kstr(key, _safe(why))
    if wait_ms >= 0:
        w.kfix(b'"retry_s":', wait_ms, 3)
    w.end()


def _safe(b):
    """Bytes fit for a JSON string: no quotes, backslashes or controls."""
    if isinstance(b, str):
        b = b.encode()
    return bytes(c if 32 <= c < 127 and c != 34 and c != 92 else 63 for c in b)


def _b(text):
    return None if text is None else text.encode()


def _read(path):
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read(16384)


def _ca(path):
    """The CA certificate at ``path`` as DER (MicroPython's TLS takes DER;
    a PEM file's first certificate is decoded here)."""
    data = _read(path)
    if data is None or not data.lstrip().startswith(b"-----BEGIN"):
        return data
    import binascii

    body = data.split(b"-----BEGIN CERTIFICATE-----", 1)[1].split(b"-----END", 1)[0]
    return binascii.a2b_base64(b"".join(body.split()))


def _url(url):
    """(tls, host, port) of the config's mqtt_url (valid: the config checked it)."""
    from .config import parse_url

    parsed = parse_url(url)
    if parsed is None:
        raise ValueError("mqtt_url %r" % (url,))
    return parsed


def _check_url(cfg):
    tls, _host, _port = _url(cfg["mqtt_url"])
    if tls:
        try:
            import ssl  # noqa: F401
        except ImportError:
            return "mqtts:// needs TLS, which this MicroPython build does not have"
    if cfg["mqtt_ca"] is not None:
        try:
            _ca(cfg["mqtt_ca"])
        except (OSError, ValueError, IndexError) as e:
            return "cannot read mqtt_ca %s as a PEM or DER certificate (%s)" % (cfg["mqtt_ca"], e)
    return None


def _network(cfg):
    """(a function telling whether the network is up, None) or (None, why
    there is none). ESP32 and Pico W join ``wifi_ssid`` (WLAN.connect
    returns at once; the client waits for isconnected()); the unix port
    uses the host's network; a board without either runs without uplink."""
    try:
        import network
    except ImportError:
        try:
            import socket  # noqa: F401
        except ImportError:
            return None, "this board has no network interface: running without uplink"
        return None, None  # the unix port: the host's network
    wlan_type = getattr(network, "WLAN", None)
    if wlan_type is None:
        return None, None  # a wired board: its network is up when it is
    wlan = wlan_type(network.STA_IF)
    if cfg["wifi_ssid"] is not None:
        wlan.active(True)
        wlan.connect(cfg["wifi_ssid"], cfg["wifi_password"] or "")
    return wlan.isconnected, None


def _device_id(cfg):
    if cfg["device_id"] is not None:
        return cfg["device_id"]
    try:
        import machine

        return "".join("%02x" % b for b in machine.unique_id())
    except (ImportError, AttributeError):
        return "unix-port"


def _reset_cause():
    try:
        import machine

        cause = machine.reset_cause()
        for name in ("PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET"):
            if getattr(machine, name, None) == cause:
                return name.lower().encode()
        return b"%d" % cause
    except (ImportError, AttributeError):
        return b"start"


def _boot_state(directory, restored):
    """(boot, trip id): this boot's number, one more than the last one on
    flash (a random start when there is none, so a wiped board does not
    repeat an earlier life's numbers), and the trip's: the saved one when
    the trip was restored, else this boot's. Written once per boot, through
    a new file and a rename."""
    import os
    import struct

    from .journal import crc16
    from .persist import _table

    path = directory + "/" + STATE_FILE
    boot = trip = -1
    try:
        with open(path, "rb") as f:
            data = f.read(16)
    except OSError:
        data = b""
    if len(data) == 14 and data[:4] == b"KDU1":  # the length first: viper reads no further than told
        c = crc16(data, 0, 12, 0xFFFF, _table())  # pyright: ignore[reportArgumentType]  (viper pointers)
        if c == (data[12] << 8 | data[13]):
            boot, trip = struct.unpack("<II", data[4:12])
    if boot < 0:
        boot = _mqtt.random_below(1 << 20) << 10  # room for a thousand boots before it meets another start
    boot = (boot + 1) & 0x3FFFFFFF
    if not restored or trip < 0:
        trip = boot
    data = bytearray(b"KDU1" + struct.pack("<II", boot, trip) + b"\0\0")
    c = crc16(data, 0, 12, 0xFFFF, _table())  # pyright: ignore[reportArgumentType]  (viper pointers)
    data[12] = c >> 8
    data[13] = c & 0xFF
    try:
        with open(path + ".new", "wb") as f:
            f.write(data)
        os.rename(path + ".new", path)
    except OSError:
        pass  # no file system: this boot's numbers stand, the next boot starts afresh
    return boot, trip


def _discovery_table(cfg, kind):
    """Home Assistant sensors: (component, object id, name, value template,
    unit, device class, state class)."""
    from .vehicle import KIND_EV, KIND_HYBRID

    us = cfg["profile"].startswith("us-")
    table = []
    if kind == KIND_EV:
        table.append(("sensor", "economy", "Economy", "wh_per_km", "Wh/km", None, "measurement"))
    elif us:
        table.append(("sensor", "economy", "Economy", "mpg_us", "mpg", None, "measurement"))
    else:
        table.append(("sensor", "economy", "Economy", "trip_km_per_l", "km/L", None, "measurement"))
    if kind != KIND_EV:
        table.append(("sensor", "fuel", "Fuel", "fuel_l", "L", "volume", "total_increasing"))
    if kind == KIND_EV or kind == KIND_HYBRID:
        table.append(("sensor", "energy", "Energy", "energy_kwh", "kWh", "energy", "total"))
    table.append(("sensor", "distance", "Distance", "distance_km", "km", "distance", "total_increasing"))
    table.append(("sensor", "eco_score", "Eco score", "eco_score", None, None, "measurement"))
    table.append(("sensor", "speed", "Speed", "speed_kmh", "km/h", "speed", "measurement"))
    table.append(("sensor", "quality", "Data quality", "{{ 'ok' if value_json.valid else 'degraded' }}", None,
                  None, None))
    for k in _alerts.KINDS:
        name = k.decode()
        words = name.replace("_", " ")
        table.append(("binary_sensor", name, words[0].upper() + words[1:],
                      "{{ 'ON' if '%s' in value_json.warnings else 'OFF' }}" % name, None, "problem", None))
    return tuple(table)


def _discovery(entry, device, vehicle):
    """(topic, payload) of one discovery config (on connect: allocates)."""
    component, obj, name, value, unit, device_class, state_class = entry
    dev = device.decode()
    template = value if value.startswith("{{") else "{{ value_json.%s }}" % value
    parts = ['{"name":"%s","unique_id":"keidrive_%s_%s","object_id":"keidrive_%s_%s"' % (name, dev, obj, dev, obj),
             ',"state_topic":"keidrive/%s/status","value_template":"%s"' % (dev, template),
             ',"availability_topic":"keidrive/%s/online","payload_available":"true",'
             '"payload_not_available":"false"' % dev]
    if unit is not None:
        parts.append(',"unit_of_measurement":"%s"' % unit)
    if device_class is not None:
        parts.append(',"device_class":"%s"' % device_class)
    if state_class is not None:
        parts.append(',"state_class":"%s"' % state_class)
    parts.append(',"device":{"identifiers":["keidrive_%s"],"name":"keidrive %s","manufacturer":"keidrive",'
                 '"model":"%s"}}' % (dev, dev, vehicle))
    topic = "homeassistant/%s/keidrive_%s/%s/config" % (component, dev, obj)
    return topic.encode(), "".join(parts).encode()
