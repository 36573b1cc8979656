"""Building and running the firmware: shared by main.py on boards and the SIL."""

import sys

from . import config as _config
from . import record
from .compat import now_us
from .loop import Firmware

BLOCK_RECORDS = 256


def vehicle_module(name):
    mod = __import__("keifw.vehicles." + name)
    return getattr(mod.vehicles, name)


def stdout_stream():
    return sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout


def stdin_stream():
    return sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin


def build(cfg_path=None, data_dir=None, out=None, port=None, gpio=None, cfg_obj=None, uart=None):
    """(Firmware, config). Config problems are logged, never fatal.
    ``uart``: a board's GNSS UART (with ``gps`` in the config)."""
    if cfg_obj is not None:
        cfg, errors = _config.validate(cfg_obj)
    elif cfg_path is not None:
        cfg, errors = _config.load(cfg_path)
    else:
        cfg, errors = dict(_config.DEFAULTS), []
    try:
        gen = vehicle_module(cfg["vehicle"])
    except ImportError as e:
        errors.append("vehicle module %s not found (%s); using %s" % (cfg["vehicle"], e, _config.DEFAULTS["vehicle"]))
        cfg["vehicle"] = _config.DEFAULTS["vehicle"]
        gen = vehicle_module(cfg["vehicle"])
    store = None
    if data_dir:
        from .persist import TripStore
        from .economy import N_ACC

        store = TripStore(data_dir, N_ACC)
    fw = Firmware(cfg, gen, out if out is not None else stdout_stream(), port=port, store=store, gpio=gpio)
    if cfg["obd"]:
        from .obdlines import attach

        attach(fw, cfg)
    if cfg["gps"]:
        from . import gps

        gps.attach(fw, cfg, uart)
    for message in errors:
        fw.error(message)
    if store is not None and fw.load():
        fw.info(b'"event":', b"trip_restored")
    if store is not None and store.rejected:
        fw.error(store.rejected)
    if cfg["mqtt_url"] is not None:
        from .uplink import attach as attach_uplink

        attach_uplink(fw, cfg, data_dir)
    return fw, cfg


def run_stream(fw, rx, virtual=True):
    """Feed records from a binary stream until its end (EOF, or an
    end-of-drive control record); then the trip summary."""
    size = record.SIZE
    buf = bytearray(BLOCK_RECORDS * size)
    mv = memoryview(buf)
    readinto = rx.readinto
    records = fw.records
    while True:
        n = readinto(buf)
        if not n:
            break
        while n % size:  # a short read left half a record: complete it
            m = readinto(mv[n:(n // size + 1) * size])
            if not m:
                n -= n % size
                break
            n += m
        if not virtual:
            fw.clock(now_us())
        records(buf, n // size, virtual)
        if fw.ended:
            break
    fw.finish()


def run_port(fw, port, stop=None):
    """Boards: read the port forever on the real clock (``now_us``).

    Per pass: the clock (due ticks), then the frames the port holds, up to a
    block of them as stream records, all scanned in one call at that time.
    Unless the block came full, the loop then sleeps the port's ``idle_ms``
    (1 ms if it names none): a port filled by its interrupt (the MCP2515's
    ring) gathers the next frames meanwhile, and a pass's own cost (the
    clock, the read) is shared by all of them rather than paid per frame on
    a busy bus; a port's buffer must hold what arrives while it sleeps."""
    import time

    # imported once: on a board each import of a built-in module looks for a
    # file of that name first (MicroPython's extensible modules), a file
    # system search that took 3 ms a pass on a Pico
    sleep_ms = getattr(time, "sleep_ms", None)  # CPython has none: it polls
    now = now_us  # looked up per call: benches set the module's clock to the frames' own
    block = fw.block
    nmax = len(block) // record.SIZE
    idle_ms = getattr(port, "idle_ms", 1)
    read = port.read
    clock = fw.clock
    at = fw.at
    while stop is None or not stop():
        t = now()
        clock(t)
        n = read(block)
        if n:
            fw.frames += n
            at(block, n, t)
        if n < nmax and sleep_ms is not None:
            sleep_ms(idle_ms)
