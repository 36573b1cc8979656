"""Shared by the GPS tests: random NMEA sentences in the many shapes modules
send them, and the firmware's reader run over them in MicroPython."""

import datetime as dt
import json
import random

from conftest import run_micropython
from keidrive.gps.nmea import sentence
from keidrive.paths import firmware_dir

# what keifw.nmea keeps: counters (st) and fields (fx), by name
ST = ("xor", "n", "taken", "bad_checksum", "garbled", "other", "stale", "no_fix")
FX = ("lat", "lon", "pos_t", "pos_n", "speed", "course", "speed_t", "speed_n", "quality", "sats", "hdop", "gga_t",
      "gga_ok", "time", "date", "x", "y", "time_t")

# Each item: hex of its bytes, then the sizes its bytes are fed in (a UART
# read ends anywhere), or RESET (a fresh reader); after each item, one line:
# the counters and fields.
READER_SCRIPT = r'''
import sys
sys.path.insert(0, sys.argv[1])
import binascii
from keifw import nmea
r = nmea.Reader()
t = 0
for line in open(sys.argv[2]):
    parts = line.split()
    data = binascii.unhexlify(parts[0])
    t = (t + 100000) & 0x3FFFFFFF
    if data == b"RESET":
        r = nmea.Reader()
    k = 0
    for size in parts[1:]:
        size = int(size)
        if data != b"RESET":
            r.feed(data, k, k + size, t)
        k += size
    print(" ".join(str(v) for v in r.st) + " | " + " ".join(str(v) for v in r.fx))
'''


def run_reader(items, tmp_path, rng=None):
    """The reader's state after each item (bytes, fed whole or, with rng, in random pieces):
    a list of (st dict, fx dict)."""
    path = tmp_path / "items.txt"
    with open(path, "w") as out:
        for data in items:
            sizes = []
            left = len(data)
            while left:
                size = left if rng is None else min(left, rng.randint(1, 40))
                sizes.append(size)
                left -= size
            out.write(data.hex() + " " + " ".join(map(str, sizes or [0])) + "\n")
    rows = []
    for line in run_micropython(READER_SCRIPT, str(firmware_dir()), str(path), timeout=300).splitlines():
        st, fx = line.split(" | ")
        rows.append((dict(zip(ST, map(int, st.split()))), dict(zip(FX, map(int, fx.split())))))
    return rows


def _latlon(value, degree_digits, decimals):
    a = abs(value)
    d = int(a)
    minutes = (a - d) * 60
    text = f"{minutes:0{3 + decimals if decimals else 2}.{decimals}f}"
    if text.startswith("60"):  # rounded up to 60 minutes
        d += 1
        text = f"{0:0{3 + decimals if decimals else 2}.{decimals}f}"
    return f"{d:0{degree_digits}d}{text}"


def _number(rng, value, max_decimals):
    decimals = rng.randint(0, max_decimals)
    return f"{value:.{decimals}f}"


class Epochs:
    """Random epochs (GGA, RMC, VTG) with increasing times, as modules send
    them: any talker, 0-3 decimals of seconds (per seed), 2-7 of minutes,
    optional fields empty, NMEA 2.3 mode fields or not."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.when = dt.datetime(2026, 3, 1, 23, 59, 0, tzinfo=dt.UTC)
        # one module writes its times one way (fewer decimals after more
        # would read as an earlier time: a stale sentence)
        self.decimals = self.rng.randint(0, 3)

    def _time(self):
        self.when += dt.timedelta(milliseconds=self.rng.choice((100, 200, 1000, 5000)))
        w = self.when
        decimals = self.decimals
        frac = f".{w.microsecond // 10 ** (6 - decimals):0{decimals}d}" if decimals else ""
        return w.strftime("%H%M%S") + frac

    def position(self):
        rng = self.rng
        lat, lon = rng.uniform(-89.99, 89.99), rng.uniform(-179.99, 179.99)
        decimals = rng.randint(2, 7)
        return (_latlon(lat, 2, decimals), "N" if lat >= 0 else "S", _latlon(lon, 3, decimals),
                "E" if lon >= 0 else "W")

    def gga(self, good=True):
        rng = self.rng
        talker = rng.choice(("GP", "GN", "GL", "GA", "GB"))
        la, ns, lo, ew = self.position()
        if good:
            quality, sats, hdop = rng.choice((1, 2, 4, 5)), rng.randint(4, 30), rng.uniform(0.5, 4.99)
        else:
            quality, sats, hdop = rng.choice(((0, 8, 1.0), (6, 8, 1.0), (1, 3, 1.0), (1, 9, rng.uniform(5.01, 50))))
        body = (f"{talker}GGA,{self._time()},{la},{ns},{lo},{ew},{quality},{sats:02d},{hdop:.{rng.randint(1, 2)}f},"
                f"{rng.uniform(-50, 3000):.1f},M,{rng.uniform(-40, 40):.1f},M,,")
        return sentence(body)

    def rmc(self, status="A"):
        rng = self.rng
        talker = rng.choice(("GP", "GN", "GL", "GA", "GB"))
        la, ns, lo, ew = self.position()
        speed = _number(rng, rng.uniform(0, 120), 3)
        course = _number(rng, rng.uniform(0, 359.99), 2) if rng.random() < 0.9 else ""
        date = self.when.strftime("%d%m%y")
        tail = rng.choice(("", ",,,A", ",,,D", ",0.5,E,A", ",,,A,V"))
        return sentence(f"{talker}RMC,{self._time()},{status},{la},{ns},{lo},{ew},{speed},{course},{date}{tail or ',,'}")

    def vtg(self):
        rng = self.rng
        talker = rng.choice(("GP", "GN", "GL", "GA", "GB"))
        kmh = rng.uniform(0, 200)
        course = _number(rng, rng.uniform(0, 359.99), 2)
        mode = rng.choice((",A", ",D", ""))
        return sentence(f"{talker}VTG,{course},T,,M,{kmh / 1.852:.3f},N,{_number(rng, kmh, 3)},K{mode}")


def parse(data):
    """pynmeagps's reading of a sentence (checksum validated), or None."""
    from pynmeagps import VALCKSUM, NMEAReader

    try:
        return NMEAReader.parse(data, validate=VALCKSUM)
    except Exception:  # noqa: BLE001  (any refusal: bad checksum, bad field)
        return None


def dumps(rows):
    return json.dumps(rows[-3:], indent=1)


def route_drive(route, cycle, tmp_path, receiver=None, config=None, start=None, profile="us-interstate",
                runtime="micropython"):
    """The firmware (SIL, records through stdin) on the simulated drive of
    ``cycle`` (a bundled name or CSV text) along ``route`` (a Route or a
    bundled name) with a GNSS module: its FirmwareReport."""
    from keidrive import sim
    from keidrive.io import record
    from keidrive.gps.nmea import Receiver, merge, uart_records
    from keidrive.gps.route import load_route, repeat_cycle
    from keidrive.drive.harness import firmware_config, run_records

    if isinstance(route, str):
        route = load_route(route)
    if start is not None:
        route.start = start
    if "\n" in cycle:
        path = tmp_path / "cycle.csv"
        path.write_text(cycle)
        cycle = str(path)
    result = sim.simulate("nbox-turbo", repeat_cycle(sim.load_cycle(cycle), route))
    receiver = receiver or Receiver()
    records = merge(record.from_frames(result.frames),
                    uart_records(receiver.sentences(route, result.trace["time_s"], result.trace["speed_kmh"])))
    cfg = firmware_config("nbox-turbo", profile, {"gps": True, **(config or {})})
    report = run_records(records.tobytes(), cfg, runtime=runtime, timeout=900)
    assert report.ok, report.failure()
    return report, result


def border_lat(lon, lat_north, lat_south):
    """The latitude (1e-6 degree) where the firmware's regions change going
    south along ``lon``, by bisection with the firmware's own lookup."""
    from keidrive.gps.locate import region_at

    north = region_at(lat_north, lon)
    a, b = lat_north, lat_south
    while a - b > 1e-6:
        m = (a + b) / 2
        if region_at(m, lon) == north:
            a = m
        else:
            b = m
    return (a + b) / 2


def across_the_line():
    """Records of a short drive (200 s, about 55,000 records): 583 m at
    30 km/h across the Tennessee-Alabama line, then stopped (samples under
    30 s apart: a longer standstill is a parked car, its bus silent, and the
    virtual clock follows the frames), no fix from 80 s for 100 s; among the
    sentences a cut one, a bad checksum and 256 bytes of noise."""
    import math

    import numpy as np
    from keidrive import sim
    from keidrive.io import record
    from keidrive.gps.nmea import Receiver, merge, uart_records
    from keidrive.gps.route import Route

    m_per_deg = 6371008.8 * math.pi / 180
    lon = -86.57
    end = border_lat(lon, 35.05, 34.95) - 350 / m_per_deg
    route = Route("across", np.array([end + 583.3 / m_per_deg, end]), np.array([lon, lon]),
                  dt.datetime(2026, 6, 1, 14, tzinfo=dt.UTC))
    result = sim.simulate("nbox-turbo", sim.load_cycle(_write_cycle(
        "time_s,speed_kmh\n0,0\n5,30\n70,30\n75,0\n100,0\n125,0\n150,0\n175,0\n200,0\n")))
    timed = Receiver(outages=[(80, 100)]).sentences(route, result.trace["time_s"], result.trace["speed_kmh"])
    good = sentence("GPRMC,140100.00,A,3500.000,N,08634.200,W,10.0,180.0,010626,,,A")
    timed += [(30.05, good[:30]), (31.05, good[:-4] + b"00\r\n"), (32.05, bytes(range(256)))]
    timed.sort(key=lambda item: item[0])
    return merge(record.from_frames(result.frames), uart_records(timed))


def _write_cycle(text):
    import tempfile

    handle = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)  # noqa: SIM115
    handle.write(text)
    handle.close()
    return handle.name


# MicroPython: the rest of the stream file f into firmware fw with the heap
# locked (err: the MemoryError an allocation raised, else None), then its traceback
LOCKED_FEED = '''
err = None
gc.collect()
micropython.heap_lock()
try:
    while True:
        n = f.readinto(buf)
        if not n:
            break
        fw.records(buf, n // 24, True)
except MemoryError as e:
    err = e
micropython.heap_unlock()
if err is not None:
    sys.print_exception(err)
'''
