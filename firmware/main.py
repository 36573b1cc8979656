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


def open_port(cfg, gen):
    """(port, None) for the CAN controller the config names, or (None, the
    reason) when this board does not have it or it does not answer."""
    kind = cfg["can_port"]
    try:
        if kind == "machine":
            from keifw.canport import MachineCANPort

            return MachineCANPort(gen, cfg["can_id"], cfg["can_bitrate"], cfg["transmit"]), None
        from keifw.mcp2515 import MCP2515Port

        return MCP2515Port.from_config(gen, cfg), None
    except ImportError as e:
        if kind == "machine":
            return None, ("can_port machine: this MicroPython has no machine.CAN (upstream has it on STM32, MIMXRT "
                          "and Alif); wire an MCP2515 and set can_port to mcp2515 (%s)" % (e,))
        return None, "can_port %s: %s" % (kind, e)
    except Exception as e:  # a controller that is missing, unwired or refuses the settings
        return None, "can_port %s: %s: %s" % (kind, type(e).__name__, e)


def open_gps_uart(cfg):
    """(machine.UART, None) for the GNSS module, or (None, the reason)."""
    try:
        from machine import UART

        kw = {"baudrate": cfg["gps_baud"], "timeout": 0, "rxbuf": 512}
        if cfg["pin_gps_rx"] is not None:
            kw["rx"] = cfg["pin_gps_rx"]
        if cfg["pin_gps_tx"] is not None:
            kw["tx"] = cfg["pin_gps_tx"]
        return UART(cfg["gps_uart"], **kw), None
    except Exception as e:  # no such UART, pins it cannot use: an error line, never a crash loop
        return None, "gps: UART %d: %s: %s" % (cfg["gps_uart"], type(e).__name__, e)


def idle(fw):
    """No CAN controller: keep the clock and the status line going (bus
    "stopped", every signal missing) so the unit is seen alive and can be
    reconfigured; nothing is integrated without frames."""
    import time

    from keifw.canport import STATE_STOPPED
    from keifw.compat import now_us

    fw.bus_state = STATE_STOPPED
    while True:
        fw.clock(now_us())
        time.sleep_ms(100)


def board_main():
    from keifw import app
    from keifw import config as _config

    cfg, _errors = _config.load(BOARD_CONFIG)
    gpio = None
    gpio_error = None
    try:
        from keifw.board import Indicators

        gpio = Indicators(cfg["pin_buzzer"], cfg["pin_led"])
    except Exception as e:  # a bad pin must not crash-loop the unit
        gpio_error = "indicators: %s" % (e,)
    try:
        gen = app.vehicle_module(cfg["vehicle"])
    except ImportError:
        gen = app.vehicle_module(_config.DEFAULTS["vehicle"])  # build() reports it
    port = None
    port_error = None
    if cfg["can_port"] == "stream":
        from keifw.canport import StreamPort

        port = StreamPort(app.stdin_stream(), None)
    else:
        port, port_error = open_port(cfg, gen)
    try:
        import os

        os.mkdir(BOARD_DATA)
    except OSError:
        pass
    uart, uart_error = open_gps_uart(cfg) if cfg["gps"] else (None, None)
    fw, _ = app.build(BOARD_CONFIG, BOARD_DATA, port=port, gpio=gpio, uart=uart)
    if gpio_error:
        fw.error(gpio_error)
    if uart_error:
        fw.error(uart_error)
    sp = getattr(port, "sample_permille", None)
    if sp is not None:  # an MCP2515: the bit timing as computed from its crystal
        fw.info(b'"mcp2515":', ("%d bit/s, sample point %d.%d %%" % (cfg["can_bitrate"], sp // 10, sp % 10)).encode())
    if port_error:
        fw.error(port_error)
        idle(fw)
    elif cfg["can_port"] == "stream":
        app.run_stream(fw, app.stdin_stream(), virtual=False)
    else:
        try:
            app.run_port(fw, port)
        except KeyboardInterrupt:
            # Ctrl-C on the console: the trip so far, then the REPL. Not saved: a
            # flash or a config change usually follows, and the next boot goes on
            # from the last periodic save
            fw.store = None
            fw.finish()


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
