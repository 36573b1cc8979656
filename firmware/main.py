"""keidrive firmware entry point.

Boards (ESP32, RP2040): runs at boot from flash with /config.json, the CAN
port named by the config (machine.CAN or an MCP2515 over SPI) and the real
clock. Laptop / CI (MicroPython unix port or CPython), the SIL entry:

    micropython firmware/main.py --stdin|--socket PATH --config PATH --data DIR [--clock virtual|real]

--stdin reads 24-byte frame records (keifw/record.py) from stdin; --socket
connects to a Unix domain socket and reads records from it (transmitted
frames, when enabled, go back over the same socket). With the virtual clock
(default) the firmware's time is the records' timestamps, so a run is
reproducible bit for bit; at end of input it prints the trip summary and
exits 0. Telemetry is JSON lines on stdout.
"""

import sys

try:
    _HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
except NameError:
    _HERE = "."
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

BOARD_CONFIG = "/config.json"
BOARD_DATA = "/data"

USAGE = "usage: main.py --stdin|--socket PATH [--config PATH] [--data DIR] [--clock virtual|real]"


def _parse(argv):
    opts = {"source": None, "path": None, "config": None, "data": None, "clock": "virtual"}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--stdin":
            opts["source"] = "stdin"
        elif a == "--socket" and i + 1 < len(argv):
            opts["source"] = "socket"
            i += 1
            opts["path"] = argv[i]
        elif a in ("--config", "--data", "--clock") and i + 1 < len(argv):
            i += 1
            opts[a[2:]] = argv[i]
        else:
            return None
        i += 1
    if opts["source"] is None or opts["clock"] not in ("virtual", "real"):
        return None
    return opts


def _unix_address(path):
    """CPython takes the path; MicroPython's unix port takes the raw
    ``struct sockaddr_un`` (family, then the NUL-terminated path)."""
    from keifw.compat import MICROPYTHON

    if not MICROPYTHON:
        return path
    import socket
    import struct

    # AF_UNIX: the unix port's socket module (the board stubs do not list it)
    return struct.pack("H", socket.AF_UNIX) + path.encode() + b"\0"  # pyright: ignore[reportAttributeAccessIssue]


class _ShortReads:
    """A MicroPython socket whose readinto returns what has arrived (0 at
    end of stream) instead of waiting until the buffer is full: a hub keeps
    the stream open, and the last records must not wait for more."""

    def __init__(self, sock):
        import select

        sock.setblocking(False)
        self.sock = sock
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)

    def readinto(self, buf):
        while True:
            n = self.sock.readinto(buf)
            if n is not None:
                return n
            for _ in self.poller.ipoll():
                break

    def write(self, data):
        return self.sock.write(data)


def host_main(argv):
    from keifw import app

    opts = _parse(argv)
    if opts is None:
        sys.stderr.write(USAGE + "\n")
        return 2
    virtual = opts["clock"] == "virtual"
    if opts["source"] == "stdin":
        fw, _cfg = app.build(opts["config"], opts["data"])
        app.run_stream(fw, app.stdin_stream(), virtual)
        return 0
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # pyright: ignore[reportAttributeAccessIssue]
    s.connect(_unix_address(opts["path"]))
    # CPython's socket file returns what has arrived; MicroPython's blocking
    # readinto would wait for a whole block, so it polls a non-blocking one.
    rx = _ShortReads(s) if hasattr(s, "readinto") else s.makefile("rwb", buffering=0)  # pyright: ignore[reportCallIssue]
    from keifw.canport import StreamPort

    port = StreamPort(rx, rx)
    fw, _cfg = app.build(opts["config"], opts["data"], port=port)
    app.run_stream(fw, rx, virtual)
    s.close()
    return 0


def board_main():
    from keifw import app
    from keifw import config as _config

    cfg, _errors = _config.load(BOARD_CONFIG)
    gpio = None
    port = None
    try:
        from keifw.board import Indicators

        gpio = Indicators(cfg["pin_buzzer"], cfg["pin_led"])
    except Exception as e:  # a bad pin must not crash-loop the unit
        sys.stdout.write('{"type":"error","message":"indicators: %s"}\n' % e)
    gen = app.vehicle_module(cfg["vehicle"])
    if cfg["can_port"] == "machine":
        from keifw.canport import MachineCANPort

        port = MachineCANPort(gen, cfg["can_id"], cfg["can_bitrate"], cfg["transmit"])
    elif cfg["can_port"] == "mcp2515":
        from keifw.mcp2515 import MCP2515Port

        port = MCP2515Port.from_config(gen, cfg)
    else:
        from keifw.canport import StreamPort

        port = StreamPort(app.stdin_stream(), None)
    try:
        import os

        os.mkdir(BOARD_DATA)
    except OSError:
        pass
    fw, _ = app.build(BOARD_CONFIG, BOARD_DATA, port=port, gpio=gpio)
    if cfg["can_port"] == "stream":
        app.run_stream(fw, app.stdin_stream(), virtual=False)
    else:
        app.run_port(fw, port)


def main():
    # Arguments mean a harness started us (SIL); without them this is a board
    # booting, even a virtual one in the unix port.
    if len(getattr(sys, "argv", ())) > 1:
        return host_main(sys.argv[1:])
    board_main()
    return 0


if __name__ == "__main__":
    code = main()
    if code:
        sys.exit(code)
