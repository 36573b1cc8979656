"""The device configuration: one JSON object in one file, validated at boot.

The schema is data (SCHEMA) so the host's ``keidrive config get|set`` can
import this module under CPython and reuse it. Each entry is
``key: (kind, default, rule, help)`` where kind is "str", "int", "bool" or
"text" and rule is a tuple of allowed values (str), ``(min, max)`` (int),
``(min, max, None)`` (int or null), None (bool) or ``(max_length, form)``
(text: a string of that form, or null; see TEXT_FORMS).

Secrets (SECRETS) are never echoed: an error about one names the key and the
rule, not the value, and ``masked`` is what any tool shows in its place.

An unknown key or a bad value never stops the firmware: validate() keeps the
default for that key and returns a message naming the key; the firmware logs
each message as an ``error`` telemetry line and runs on safe defaults.
"""

VEHICLES = ("kei_turbo_660", "kei_hybrid_660", "kei_ev")
PROFILES = ("jp-expressway", "jp-expressway-120", "us-minitruck-55", "us-minitruck-35", "us-interstate", "custom")
PORTS = ("stream", "machine", "mcp2515")
SECRETS = ("mqtt_password", "wifi_password")
MASK = "********"

SCHEMA = {
    "vehicle": ("str", "kei_turbo_660", VEHICLES, "generated decoder module (the vehicle DBC) under keifw/vehicles"),
    "profile": ("str", "jp-expressway", PROFILES, "speed profile for the overspeed / below_minimum warnings"),
    "custom_limit_kmh": ("int", 80, (10, 250), "speed limit of the custom profile, km/h"),
    "custom_minimum_kmh": ("int", 0, (0, 150), "minimum speed of the custom profile, km/h (0: none)"),
    "posted_limit_mph": ("int", 70, (25, 90), "posted limit of the us-interstate profile, mph"),
    "minimum_mph": ("int", 40, (0, 60), "minimum speed of the us-interstate profile, mph (0: none)"),
    "transmit": ("bool", False, None, "send KD_ECO_STATUS / KD_WARNING / KD_TRIP_SUMMARY (listen-only when false)"),
    "obd": ("bool", False, None, "OBD-II client: polls the engine ECU (transmits; keifw/obd.py) and takes fuel from it"),
    "obd_ve_pct": ("int", 80, (30, 120), "volumetric efficiency for OBD-II speed-density fuel, % (keidrive calibrate)"),
    "obd_displacement_cc": ("int", 658, (300, 3000), "engine displacement for OBD-II speed-density fuel, cc"),
    "obd_bus_share_pct": ("int", 5, (1, 50), "most of the bus the OBD-II client's requests and replies may take, %"),
    "gps": ("bool", False, None, "read a GNSS module's NMEA (UART, or the stream's UART records): GPS speed, and the "
            "kei rules of the state the car is in (keifw/gps.py)"),
    "gps_rules": ("bool", True, None, "warn by the kei rule of the jurisdiction the GPS places the car in (false: by "
                  "the profile always)"),
    "gps_hold_s": ("int", 60, (5, 3600), "how long a jurisdiction's rule holds without a GPS fix before the profile's"),
    "gps_uart": ("int", 1, (0, 2), "UART id of the GNSS module"),
    "gps_baud": ("int", 9600, (4800, 115200), "its baud rate"),
    "pin_gps_rx": ("int", None, (0, 48, None), "the UART's RX pin, to the module's TX (null: the UART's default)"),
    "pin_gps_tx": ("int", None, (0, 48, None), "the UART's TX pin, to the module's RX (null: the UART's default)"),
    "save_interval_s": ("int", 60, (10, 3600), "trip save period, seconds (flash writes per hour = 3600 / this)"),
    "status_interval_s": ("int", 1, (1, 60), "period of the status telemetry line, seconds"),
    "coolant_limit_c": ("int", 110, (80, 130), "coolant temperature for engine_stress, degC"),
    "rpm_limit": ("int", 5500, (2000, 9000), "sustained engine speed for engine_stress, rpm"),
    "boost_limit_kpa": ("int", 80, (10, 200), "sustained boost for engine_stress, kPa"),
    "can_port": ("str", "stream", PORTS, "CAN source on a board: machine.CAN, an MCP2515 over SPI, or the stream"),
    "can_id": ("int", 1, (1, 3), "machine.CAN controller id (upstream numbers them from 1)"),
    "can_bitrate": ("int", 500000, (10000, 1000000), "CAN bit rate, bit/s"),
    "mcp2515_spi": ("int", 0, (0, 2), "SPI bus id of the MCP2515"),
    "mcp2515_baudrate": ("int", 8000000, (100000, 10000000), "SPI clock, Hz"),
    "mcp2515_osc_mhz": ("int", 8, (8, 20), "MCP2515 crystal, MHz (8, 16 or 20)"),
    "pin_sck": ("int", None, (0, 48, None), "SPI SCK pin (null: the bus default)"),
    "pin_mosi": ("int", None, (0, 48, None), "SPI MOSI pin (null: the bus default)"),
    "pin_miso": ("int", None, (0, 48, None), "SPI MISO pin (null: the bus default)"),
    "pin_cs": ("int", 17, (0, 48), "MCP2515 chip select pin"),
    "pin_int": ("int", 20, (0, 48), "MCP2515 interrupt pin (active low)"),
    "pin_buzzer": ("int", None, (0, 48, None), "buzzer GPIO, on while a caution or critical warning is active"),
    "pin_led": ("int", None, (0, 48, None), "LED GPIO, on while any warning is active"),
    # the uplink (keifw/uplink.py, docs/uplink.md): on when mqtt_url is set
    "mqtt_url": ("text", None, (120, "url"), "MQTT broker, mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (null: no uplink)"),
    "mqtt_username": ("text", None, (64, "any"), "MQTT user name (null: none)"),
    "mqtt_password": ("text", None, (64, "any"), "MQTT password (secret: never printed)"),
    "mqtt_ca": ("text", None, (64, "path"), "CA certificate file on the board (PEM or DER) for mqtts:// (null: no TLS check)"),
    "mqtt_keepalive_s": ("int", 60, (10, 600), "MQTT keepalive; a ping unanswered for 10 s forces a reconnect"),
    "mqtt_backoff_max_s": ("int", 60, (1, 600), "longest wait between connection attempts (1 s doubling, jittered)"),
    "mqtt_tls_parked": ("bool", False, None, "mqtts://: start TLS handshakes only while parked (a slow board's handshake "
                        "step can outlast a tick; messages wait in the journal meanwhile)"),
    "device_id": ("text", None, (32, "id"), "the device's id in topics (null: machine.unique_id() in hex)"),
    "wifi_ssid": ("text", None, (32, "any"), "Wi-Fi network (ESP32, Pico W; null: no Wi-Fi)"),
    "wifi_password": ("text", None, (63, "any"), "Wi-Fi password (secret: never printed)"),
    "dns_server": ("text", None, (21, "ipv4"), "DNS server (a.b.c.d[:port]) for the broker's name (null: the network's)"),
    "uplink_status_s": ("int", 60, (10, 3600), "status message period while driving, seconds (and on change)"),
    "uplink_trip_min": ("int", 10, (1, 120), "trip message period while driving, minutes (and at trip end)"),
    "uplink_journal_kib": ("int", 128, (8, 2048), "flash journal bound, KiB (messages wait there until acknowledged)"),
    "uplink_flush_s": ("int", 10, (0, 120), "at end of input, wait up to this for the broker's acknowledgements"),
    "ha_discovery": ("bool", True, None, "publish Home Assistant discovery configs (retained) on connect"),
}

# text forms: what characters (and shape) a text value may have
TEXT_FORMS = {
    "id": "letters, digits, _ and -",
    "any": "printable characters",
    "path": "an absolute path of printable characters",
    "url": "mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
    "ipv4": "an IPv4 address (a.b.c.d), a port after a colon if not 53",
}

DEFAULTS = {key: spec[1] for key, spec in SCHEMA.items()}


def masked(key, value):
    """``value`` as a tool may show it: a secret's is MASK (null stays null)."""
    return MASK if key in SECRETS and value is not None else value


def parse_url(url):
    """(tls, host, port) of an mqtt:// or mqtts:// URL, or None. The host is
    a name or an IPv4 address; the port 1883 / 8883 unless given."""
    for scheme, tls, port in (("mqtt://", False, 1883), ("mqtts://", True, 8883)):
        if url.startswith(scheme):
            rest = url[len(scheme):]
            if rest.endswith("/"):
                rest = rest[:-1]
            host = rest
            if ":" in rest:
                host, digits = rest.rsplit(":", 1)
                if not digits.isdigit() or not 0 < int(digits) < 65536:
                    return None
                port = int(digits)
            if not host or not all(c.isalpha() or c.isdigit() or c in "-." for c in host):
                return None
            return tls, host, port
    return None


_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def _ipv4(text):
    if ":" in text:
        text, port = text.split(":", 1)
        if not port.isdigit() or not 0 < int(port) < 65536:
            return False
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def _text_ok(form, value):
    if not all(" " <= c and c != "\x7f" for c in value):
        return False
    if form == "id":
        return all(c in _ID_CHARS for c in value)
    if form == "path":
        return value.startswith("/")
    if form == "url":
        return parse_url(value) is not None
    if form == "ipv4":
        return _ipv4(value)
    return True


def check(key, value):
    """The error message for ``key = value``, or None when it is valid."""
    spec = SCHEMA.get(key)
    if spec is None:
        return "unknown config key %r" % (key,)
    kind, _default, rule, _help = spec
    if kind == "text":
        if value is None:
            return None
        shown = "a secret" if key in SECRETS else repr(value)
        if not isinstance(value, str) or not 0 < len(value) <= rule[0] or not _text_ok(rule[1], value):
            return "config %s must be null or %s, at most %d characters, got %s" % (
                key, TEXT_FORMS[rule[1]], rule[0], shown)
        return None
    if kind == "bool":
        if value is True or value is False:
            return None
        return "config %s must be true or false, got %r" % (key, value)
    if kind == "str":
        if isinstance(value, str) and value in rule:
            return None
        return "config %s must be one of %s, got %r" % (key, ", ".join(rule), value)
    # int
    if value is None and len(rule) == 3:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return "config %s must be an integer, got %r" % (key, value)
    if not rule[0] <= value <= rule[1]:
        return "config %s must be in %d..%d, got %d" % (key, rule[0], rule[1], value)
    return None


def validate(obj):
    """(config dict with every key, list of error messages). Never raises."""
    cfg = dict(DEFAULTS)
    errors = []
    if not isinstance(obj, dict):
        errors.append("config must be a JSON object; using defaults")
        return cfg, errors
    for key in obj:
        value = obj[key]
        message = check(key, value)
        if message is None:
            cfg[key] = value
        else:
            errors.append(message + "; using %r" % (DEFAULTS.get(key),) if key in SCHEMA else message + "; ignored")
    return cfg, errors


MAX_BYTES = 8192  # a real config is < 1 kB; more is garbage (and a board's heap)


def load(path):
    """Read and validate the config file: (config, errors). Never raises."""
    try:
        import json

        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        return dict(DEFAULTS), ["cannot read config %s (%s); using defaults" % (path, e)]
    if len(raw) > MAX_BYTES:
        return dict(DEFAULTS), ["config %s is larger than %d bytes; using defaults" % (path, MAX_BYTES)]
    if raw[:3] == b"\xef\xbb\xbf":  # an editor's UTF-8 byte order mark
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except (UnicodeError, ValueError):
        return dict(DEFAULTS), ["config %s is not UTF-8 text; using defaults" % (path,)]
    try:
        obj = json.loads(text)
    except ValueError as e:
        return dict(DEFAULTS), ["config %s is not valid JSON (%s); using defaults" % (path, e)]
    except Exception as e:  # nested too deeply for the parser (RecursionError, MemoryError)
        return dict(DEFAULTS), ["config %s cannot be parsed (%s); using defaults" % (path, type(e).__name__)]
    return validate(obj)
