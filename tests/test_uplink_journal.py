"""The uplink's flash journal (keifw/journal.py) in the MicroPython unix port
and CPython: what is written is sent until acknowledged, survives a reboot,
never comes back torn, and a full journal drops statuses before events
before trips, counting what it dropped.

The file system here is the host's (the unix port's VfsPosix): a power cut
is a file cut at some byte, which is what these tests make. On a board
LittleFS commits a write whole or not at all, a narrower case of the same.
"""

import json
from pathlib import Path

from keidrive.paths import firmware_dir

PRELUDE = f"""
import sys, os, json
sys.path.insert(0, {str(firmware_dir())!r})
from keifw.journal import Journal, STATUS, EVENT, TRIP, HEADER
REC = bytearray(HEADER + 1600 + 2)
BUF = bytearray(128 + 1602)

def put(j, c, text):
    b = text.encode()
    REC[HEADER:HEADER + len(b)] = b
    return j.append(c, REC, len(b))

def drain(j, ack=True):
    got = []
    for c in (TRIP, EVENT, STATUS):
        while True:
            n = j.read(c, BUF, 128)
            if n < 0:
                break
            got.append(bytes(BUF[128:128 + n]).decode())
            if ack:
                j.ack(c, j.last_seg, j.last_end)
    return got
"""


def run(interpreter, body, folder):
    return json.loads(interpreter(PRELUDE + body.replace("DIR", repr(str(folder)))).strip().splitlines()[-1])


def test_what_is_written_is_sent_until_acknowledged_across_reboots(interpreter, tmp_path):
    out = run(interpreter, """
j = Journal(DIR, 65536)
for i in range(30):
    put(j, (STATUS, EVENT, TRIP)[i % 3], "m%d" % i + "x" * 300)
first = drain(j, ack=False)      # sent, never acknowledged (the connection dropped)
j.rewind()
again = drain(j, ack=False)
j = Journal(DIR, 65536)          # a reboot: nothing was acknowledged
after_boot = drain(j)
left = Journal(DIR, 65536)       # everything acknowledged: nothing comes back
print(json.dumps({"first": first, "again": again, "after_boot": after_boot, "left": drain(left),
                  "files": sorted(os.listdir(DIR)), "queued": left.queued()}))
""", tmp_path / "j")
    assert len(out["first"]) == 30 and out["again"] == out["first"] == out["after_boot"]
    # trips first, then events, then statuses, each in the order written
    assert [m.split("x")[0] for m in out["first"][:10]] == [f"m{i}" for i in range(2, 30, 3)]
    assert out["left"] == [] and out["queued"] == 0 and out["files"] == []


def test_acknowledged_segments_are_deleted_and_what_follows_stays(interpreter, tmp_path):
    out = run(interpreter, """
j = Journal(DIR, 65536)
for i in range(40):
    put(j, EVENT, "e%d" % i + "y" * 200)
got = []
for _ in range(25):              # 25 of 40 acknowledged
    n = j.read(EVENT, BUF, 128)
    got.append(bytes(BUF[128:128 + n]).decode()[:3])
    j.ack(EVENT, j.last_seg, j.last_end)
files = sorted(os.listdir(DIR))
j = Journal(DIR, 65536)
rest = [m[:3] for m in drain(j)]
print(json.dumps({"files": files, "rest": rest, "queued": j.queued()}))
""", tmp_path / "j")
    # a segment (4 KiB) holds 19 of these records: the first is gone, the others stay
    assert out["files"] == ["e1.jnl", "e2.jnl"]
    # after a reboot the unacknowledged 15 come back, with the acknowledged
    # records of their segment before them (the delete is what remembers)
    assert out["rest"][-15:] == [f"e{i}" for i in range(25, 40)]
    assert out["rest"] == [f"e{i}" for i in range(19, 40)]


def test_a_torn_write_at_every_offset_is_never_sent(interpreter, tmp_path):
    """The last record cut at every byte (and, separately, garbage after
    it): the records before it come back whole, the torn one never."""
    out = run(interpreter, """
j = Journal(DIR, 65536)
texts = ["event %d " % i + "z" * (37 * i) for i in range(4)]
for t in texts:
    put(j, EVENT, t)
path = DIR + "/e0.jnl"
whole = open(path, "rb").read()
starts = [0]
for t in texts:
    starts.append(starts[-1] + HEADER + len(t) + 2)
results = []
for cut in range(len(whole)):
    for tail in (b"", b"\\xb5\\x01\\xff"):   # a cut, and a cut followed by stray bytes
        with open(path, "wb") as f:
            f.write(whole[:cut] + tail)
        got = drain(Journal(DIR, 65536))
        complete = sum(1 for s in starts[1:] if s <= cut)
        results.append(got == texts[:complete])
        for name in os.listdir(DIR):
            os.remove(DIR + "/" + name)
print(json.dumps({"cases": len(results), "ok": sum(results), "bytes": len(whole)}))
""", tmp_path / "j")
    assert out["ok"] == out["cases"] == 2 * out["bytes"]


def test_a_full_journal_drops_statuses_then_events_and_keeps_trips(interpreter, tmp_path):
    """Hours offline in a 16 KiB journal: statuses go first (counted), then
    events; trips stay while anything below them is left."""
    out = run(interpreter, """
j = Journal(DIR, 16384)
status = "s" * 600
for i in range(12):
    put(j, TRIP, "trip %d " % i + "t" * 500)
    for k in range(20):
        put(j, STATUS, status)
    for k in range(3):
        put(j, EVENT, "event %d %d " % (i, k) + "e" * 150)
used = j.used()
dropped = [j.dropped(c) for c in (STATUS, EVENT, TRIP)]
queued = [j.queued(c) for c in (STATUS, EVENT, TRIP)]
for i in range(30):               # then only trips: the events go, then the oldest trips
    put(j, TRIP, "late trip %d " % i + "t" * 500)
later = [j.dropped(c) for c in (STATUS, EVENT, TRIP)]
got = drain(j)
print(json.dumps({"used": used, "dropped": dropped, "queued": queued, "later": later,
                  "trips": [m.rsplit(" ", 1)[0] for m in got if "trip" in m], "events": sum("event" in m for m in got)}))
""", tmp_path / "j")
    assert out["used"] <= 16384
    status_dropped, event_dropped, trip_dropped = out["dropped"]
    assert status_dropped > 200 and event_dropped == 0 and trip_dropped == 0
    assert out["queued"][1:] == [36, 12]  # every event and trip kept
    assert status_dropped + out["queued"][0] == 240
    assert out["later"][0] == 240 and out["later"][1] == 36  # all statuses, then all events, before any trip
    assert out["later"][2] > 0 and out["trips"][-1] == "late trip 29"
    assert out["events"] == 0


def test_records_are_checked_by_crc(interpreter, tmp_path):
    """A flipped bit inside a record: that record and the rest of its
    segment are never sent, and counted."""
    out = run(interpreter, """
j = Journal(DIR, 65536)
for i in range(3):
    put(j, STATUS, "status %d" % i)
data = bytearray(open(DIR + "/s0.jnl", "rb").read())
data[(HEADER + 8 + 2) + HEADER + 3] ^= 4   # inside the second record's payload
open(DIR + "/s0.jnl", "wb").write(data)
j = Journal(DIR, 65536)
got = drain(j)
print(json.dumps({"got": got, "corrupt": j.corrupt}))
""", tmp_path / "j")
    assert out["got"] == ["status 0"] and out["corrupt"] == 1


def test_the_journal_is_bounded_in_bytes_on_disk(interpreter, tmp_path):
    """What the journal counts is what its files hold."""
    out = run(interpreter, """
j = Journal(DIR, 32768)
for i in range(500):
    put(j, (STATUS, EVENT)[i % 2], "x" * (100 + i % 400))
print(json.dumps({"used": j.used()}))
""", tmp_path / "j")
    assert out["used"] == sum(p.stat().st_size for p in Path(tmp_path / "j").iterdir()) <= 32768
