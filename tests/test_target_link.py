"""The serial link's framing: host framing (keidrive.target.link) into the
firmware's resynchronising reader (firmware/keifw/link.py), in the real
MicroPython unix port and in CPython.

The check byte is CRC-8/SAE-J1850; its catalogue check value (0x4B over
b"123456789", CRC RevEng catalogue) is the outside reference for both halves.
"""

import json
import random

import numpy as np
import pytest
from conftest import ROOT
from keidrive.drive.harness import firmware_config
from keidrive.io import record
from keidrive.sim import load_cycle, load_vehicle, simulate
from keidrive.target import link

FIRMWARE = ROOT / "firmware"

READ = r"""
import sys
sys.path.insert(0, sys.argv[1])
from keifw import app, link
data = open(sys.argv[2], "rb").read()
class Chunks:
    # a UART hands over what has arrived: odd-sized pieces
    def __init__(self, data):
        self.data = data
        self.at = 0
        self.step = 0
    def readinto(self, buf, nbytes=None):
        self.step = self.step % 7 + 1
        n = min(len(buf) if nbytes is None else nbytes, len(self.data) - self.at, 997 * self.step)
        buf[:n] = self.data[self.at:self.at + n]
        self.at += n
        return n
fw, _ = app.build(cfg_obj={"vehicle": sys.argv[3], "profile": "jp-expressway"})
app.run_stream(fw, link.FramedReader(Chunks(data), fw), True)
"""


SHORT_CYCLE = "time_s,speed_kmh\n0,0\n5,0\n20,40\n40,60\n55,20\n60,0\n"


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    """About 20,000 frames of a start, a pull to 60 km/h and a stop."""
    cycle = tmp_path_factory.mktemp("cycle") / "short.csv"
    cycle.write_text(SHORT_CYCLE)
    return record.from_frames(simulate(load_vehicle("nbox-turbo"), load_cycle(str(cycle))).frames)


def trip(interpreter, tmp_path, stream: bytes) -> dict:
    path = tmp_path / "link.bin"
    path.write_bytes(stream)
    out = interpreter(READ, str(FIRMWARE), str(path), firmware_config("nbox-turbo")["vehicle"])
    trips = [json.loads(line) for line in out.splitlines() if line.startswith('{"type":"trip"')]
    assert len(trips) == 1, out[-2000:]
    return trips[0]


def test_the_check_is_crc8_sae_j1850(interpreter):
    out = interpreter(f"import sys\nsys.path.insert(0, {str(FIRMWARE)!r})\nfrom keifw import link\n"
                      "crc = 0xFF\nfor b in b'123456789':\n    crc = link.CRC_TABLE[crc ^ b]\nprint(crc ^ 0xFF)")
    assert int(out) == 0x4B


def test_host_framing_sets_sync_and_check_and_keeps_the_record():
    records = np.zeros(3, dtype=record.DTYPE)
    records["timestamp_us"] = [1, 2, 3]
    records["can_id"] = 0x130
    records["dlc"] = 8
    framed = np.frombuffer(link.frame(records), dtype=np.uint8).reshape(3, 24)
    assert (framed[:, 14] == link.SYNC).all()
    for row in framed:
        crc = 0xFF
        for k, byte in enumerate(row):
            if k != 15:
                crc = int(link._TABLE[crc ^ byte])
        assert row[15] == crc ^ 0xFF
    raw = framed.copy()
    raw[:, 14:16] = 0
    assert raw.tobytes() == records.tobytes()
    ending = np.frombuffer(link.ending(), dtype=record.DTYPE)
    assert ending["flags"][0] & record.FLAG_CONTROL and ending["can_id"][0] == record.CONTROL_END_OF_DRIVE
    assert len(ending) == 1 + link.BLOCK_RECORDS


def without(records, indices):
    keep = np.ones(len(records), dtype=bool)
    keep[list(indices)] = False
    return records[keep]


def test_stray_and_lost_bytes_cost_one_frame_each_and_are_counted(interpreter, tmp_path, drive):
    clean = trip(interpreter, tmp_path, link.frame(drive) + link.ending())
    assert clean["lost_frames"] == 0 and clean["frames"] == len(drive)
    framed = bytearray(link.frame(drive))
    stray_at, lost_at = 5000, 12000  # record indices
    # a stray byte inside one record's data; another loses its byte 3
    framed[lost_at * 24 + 3:lost_at * 24 + 4] = b""
    framed[stray_at * 24 + 18:stray_at * 24 + 18] = b"\x55"
    damaged = trip(interpreter, tmp_path, bytes(framed) + link.ending())
    assert damaged["lost_frames"] == 2
    # exactly those two records are gone: the same trip as a clean link without them
    reference = trip(interpreter, tmp_path, link.frame(without(drive, (stray_at, lost_at))) + link.ending())
    assert {**damaged, "lost_frames": 0} == reference


def test_noise_between_records_is_skipped(interpreter, tmp_path, drive):
    rng = random.Random(7)
    framed = link.frame(drive)
    cut = 700 * 24
    noise = bytes(rng.randrange(256) for _ in range(301))
    noisy = trip(interpreter, tmp_path, framed[:cut] + noise + framed[cut:] + link.ending())
    clean = trip(interpreter, tmp_path, framed + link.ending())
    # every record arrives; the gap is counted as the frames its length could have held
    assert noisy["frames"] == clean["frames"]
    assert noisy["lost_frames"] == (301 + 12) // 24
    assert {**noisy, "lost_frames": 0} == clean


def test_unframed_records_are_not_taken(interpreter, tmp_path, drive):
    """Records without sync and check (the plain stdin format) are noise to the link."""
    out = trip(interpreter, tmp_path, drive[:500].tobytes() + link.ending())
    assert out["frames"] == 0 and out["lost_frames"] >= 1
