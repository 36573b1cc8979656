"""The firmware's NMEA reader (keifw/nmea.py) in the MicroPython unix port,
against pynmeagps (PyPI) on the same bytes: random sentences in the shapes
modules send, corrupted ones, stale ones, gated fixes, and the sample
sentences of pynmeagps' and pynmea2's test suites (tests/data)."""

import random
from pathlib import Path

import pytest
from conftest import micropython_or_skip
from gps_helpers import Epochs, dumps, parse, run_reader

pytest.importorskip("pynmeagps")
micropython_or_skip()

SAMPLES = Path(__file__).parent / "data" / "nmea_samples.txt"


def _ms(t):
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000


def _e7(value):
    return round(value * 1e7)


def _check_fields(ref, fx):
    """The fields a taken sentence set, against pynmeagps' reading of it."""
    kind = ref.msgID
    if kind in ("GGA", "RMC"):
        assert fx["time"] in (_ms(ref.time), _ms(ref.time) - 1), (fx, ref)
        assert abs(fx["lat"] - _e7(ref.lat)) <= 1 and abs(fx["lon"] - _e7(ref.lon)) <= 1, (fx, ref)
    if kind == "GGA":
        assert (fx["quality"], fx["sats"]) == (ref.quality, ref.numSV), (fx, ref)
        assert abs(fx["hdop"] - ref.HDOP * 100) <= 1, (fx, ref)
    if kind == "RMC" and ref.spd != "":  # no speed field: the speed is not taken
        assert abs(fx["speed"] - ref.spd * 185.2) <= 1, (fx, ref)
        assert fx["course"] == -1 if ref.cog == "" else abs(fx["course"] - ref.cog * 100) <= 1, (fx, ref)
    if kind == "RMC" and ref.date != "":
        assert fx["date"] == ref.date.year * 10000 + ref.date.month * 100 + ref.date.day, (fx, ref)
    if kind == "VTG":
        assert abs(fx["speed"] - ref.sogk * 100) <= 1 and abs(fx["course"] - ref.cogt * 100) <= 1, (fx, ref)


def test_random_sentences_read_as_pynmeagps_reads_them(tmp_path):
    """GGA, RMC and VTG of every talker, 0-3 decimals of seconds, 2-7 of
    minutes, across midnight, fed in random pieces as a UART delivers them."""
    items = []
    for seed in range(10):  # a module each, from midnight
        epochs = Epochs(seed)
        for _ in range(30):
            items += [epochs.gga(), epochs.rmc(), epochs.vtg()]
        items.append(b"RESET")
    rows = run_reader(items, tmp_path, random.Random(2))
    taken = 0
    for k, (data, (st, fx)) in enumerate(zip(items, rows)):
        if data == b"RESET":  # a module's whole run: every fix taken
            assert rows[k - 1][1]["pos_n"] == rows[k - 1][1]["speed_n"] == 60, dumps(rows)
            taken = 0
            continue
        ref = parse(data)
        assert ref is not None, data
        taken += 1
        assert st["taken"] == taken and st["garbled"] == st["bad_checksum"] == st["stale"] == 0, (data, st)
        _check_fields(ref, fx)


def test_fixes_that_fail_the_gates_move_nothing(tmp_path):
    """No fix, an estimated one, 3 satellites, HDOP over 5, RMC status V: the
    position and the speed stay; each is counted."""
    epochs = Epochs(3)
    items = [epochs.gga(), epochs.rmc(), epochs.vtg()]
    for _ in range(40):
        items += [epochs.gga(good=False), epochs.rmc(), epochs.vtg(), epochs.gga(), epochs.rmc(status="V")]
    rows = run_reader(items, tmp_path)
    moved = rows[2][1]
    for data, (st, fx) in zip(items[3:], rows[3:]):
        kind = data[3:6]
        if kind == b"GGA" and fx["gga_ok"]:  # a good GGA moves the position, and only it
            moved = {**moved, **{k: fx[k] for k in ("lat", "lon", "pos_t", "pos_n", "x", "y")}}
        for key in ("lat", "lon", "pos_n", "speed", "speed_n", "date"):
            assert fx[key] == moved[key], (data, key, fx, moved)
    st = rows[-1][0]
    assert st["no_fix"] == 40 * 4 and st["taken"] == len(items)


def _corrupt(rng, data):
    """One way a sentence arrives broken, and the bytes that arrive."""
    body = bytearray(data)
    how = rng.choice(("flip", "delete", "insert", "truncate", "checksum", "overlong", "lowbyte"))
    i = rng.randrange(1, len(body) - 2)
    if how == "flip":
        body[i] = rng.choice([c for c in range(33, 127) if c not in (body[i], 36)])
    elif how == "delete":
        del body[i]
    elif how == "insert":
        body.insert(i, rng.choice((44, 46, 48, 65)))
    elif how == "truncate":
        body = body[:i]  # cut short: the next sentence's $ ends it
    elif how == "checksum":
        body[-3] = 48 + (body[-3] - 47) % 10 if body[-3] < 58 else 48
    elif how == "overlong":
        body[i:i] = b"0" * 100
    else:
        body.insert(i, rng.choice((0, 7, 0x8F, 0xFF)))
    return how, bytes(body)


def test_a_garbled_truncated_or_stale_sentence_moves_nothing(tmp_path):
    """Each broken sentence between good ones: pynmeagps refuses it, and the
    firmware's fields are as before it; it is counted."""
    rng = random.Random(5)
    epochs = Epochs(7)
    items, kinds = [], []
    for _ in range(150):
        good = [epochs.gga(), epochs.rmc(), epochs.vtg()]
        how, bad = _corrupt(rng, rng.choice(good[1:] + [epochs.gga()]))
        items += good + [bad]
        kinds += [None, None, None, how]
    # stale: an older epoch's sentences after a newer one's
    old = Epochs(7)
    for _ in range(20):
        items.append(old.rmc())
        kinds.append("stale")
    rows = run_reader(items, tmp_path)
    for k, (data, how) in enumerate(zip(items, kinds)):
        if how is None:
            continue
        # pynmeagps refuses it too, but for a NUL byte (the checksum stays as
        # it was: pynmeagps reads it as part of the field) and an overlong
        # line (pynmeagps has no length limit; an even run of one character
        # leaves the checksum as it was)
        assert how in ("truncate", "stale", "overlong") or parse(data) is None or b"\0" in data, (how, data)
        before, after = rows[k - 1], rows[k]
        for key in ("lat", "lon", "pos_n", "speed", "speed_n", "course", "date", "time", "quality", "sats", "hdop"):
            assert after[1][key] == before[1][key], (how, data, key)
        assert after[0]["taken"] == before[0]["taken"], (how, data)
    st = rows[-1][0]
    assert st["stale"] == 20
    assert st["bad_checksum"] + st["garbled"] >= 150 - kinds.count("truncate")


def test_fields_out_of_range_under_a_good_checksum_move_nothing(tmp_path):
    from keidrive.gps.nmea import sentence

    epochs = Epochs(9)
    items = [epochs.gga(), epochs.rmc()]
    items += [
        sentence("GPRMC,250000.00,A,4807.038,N,01131.000,E,1.0,10.0,230394,,,A"),  # hour 25
        sentence("GPRMC,120000.00,A,9107.038,N,01131.000,E,1.0,10.0,230394,,,A"),  # 91 degrees north
        sentence("GPRMC,120000.00,A,4867.038,N,01131.000,E,1.0,10.0,230394,,,A"),  # 67 minutes
        sentence("GPRMC,120000.00,A,4807.038,N,18131.000,E,1.0,10.0,230394,,,A"),  # 181 degrees east
        sentence("GPRMC,120000.00,A,4807.038,X,01131.000,E,1.0,10.0,230394,,,A"),  # no hemisphere
        sentence("GPRMC,120000.00,A,4807.038,N,01131.000,E,1.0,10.0,320394,,,A"),  # 32nd of March
        sentence("GPRMC,120000.00,A,48O7.038,N,01131.000,E,1.0,10.0,230394,,,A"),  # a letter in a number
        sentence("GPVTG,10.0,T,,M,999.0,N,1850.1,K,A"),  # 1850 km/h
    ]
    rows = run_reader(items, tmp_path)
    for data, (st, fx) in zip(items[2:], rows[2:]):
        for key in ("lat", "lon", "pos_n", "speed", "speed_n", "date"):
            assert fx[key] == rows[1][1][key], (data, key)


def test_the_sample_sentences_of_two_parsers_read_as_pynmeagps_reads_them(tmp_path):
    """Each sample after a fresh reader has seen a good GGA a moment before
    (RMC and VTG need one), of the sample's own time (not after it)."""
    from keidrive.gps.nmea import sentence

    samples = [line.strip().encode() + b"\r\n" for line in SAMPLES.read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    items = []
    for data in samples:
        t = getattr(parse(data), "time", "")
        hhmmss = t.strftime("%H%M%S") if t != "" else "000000"
        items += [b"RESET", sentence(f"GPGGA,{hhmmss},0000.000,N,00000.000,E,1,08,1.0,0.0,M,0.0,M,,"), data]
    rows = run_reader(items, tmp_path)
    checked = 0
    for k, data in enumerate(samples):
        ref = parse(data)
        _st, fx = rows[3 * k + 2]
        lead_fx = rows[3 * k + 1][1]
        moved = fx["pos_n"] != lead_fx["pos_n"] or fx["speed_n"] != lead_fx["speed_n"]
        gga_ok = ref.msgID == "GGA" and ref.quality in (1, 2, 3, 4, 5) and ref.numSV >= 4 and ref.HDOP != "" \
            and ref.HDOP <= 5 and ref.lat != ""
        rmc_ok = ref.msgID == "RMC" and ref.status == "A" and ref.lat != "" and getattr(ref, "posMode", "") not in ("N", "E")
        if gga_ok or rmc_ok:
            assert moved, data
            _check_fields(ref, fx)
            checked += 1
        elif ref.msgID != "VTG":
            assert not moved, data
    assert checked >= 10  # 13 of the 54 samples are fixes that pass the gates
