"""MicroPython side of the uplink's measurements (keidrive bench --only
uplink, tests/test_uplink_firmware.py). Not imported by the host: it runs
inside MicroPython with ``keifw`` on sys.path.

``heap(...)`` (unix ports, a real broker): the firmware drives a file of
stream records until its uplink has connected and the broker has
acknowledged everything; then the heap the uplink holds (gc.mem_alloc()
after a collection, against the same firmware before attach: its buffers,
objects, journal index and socket, the modules' code not counted), how long
connecting took and its longest single step (the TLS handshake's crypto
runs inside one), and an idle stretch (ticks and the once-a-second schedule
with nothing due) under ``micropython.heap_lock()``. One JSON line.

``loop_fps(...)`` (unix port): the whole drive through ``Firmware.records``
timed without and with the uplink (connected before the clock starts):
frames per second of each.

``idle_ticks(...)`` (the qemu board, no network): the uplink connected to a
stand-in socket that answers CONNECT with a CONNACK and has nothing more to
say, and the Cortex-M3 instructions per 10 Hz tick of its idle path, its
once-a-second look at the car included (``ticks_us`` counts thousands of
instructions under ``-icount shift=0``). The stand-in is written here: it
measures the firmware's side only. One line ``uplink {...}``.
"""

import gc
import json
import sys
import time

import micropython
from keifw import app, config, uplink
from keifw import mqtt as _mqtt


class Null:
    def write(self, b, n=None):
        return n


def _firmware(cfg, data_dir):
    plain = {k: v for k, v in cfg.items() if not k.startswith(("mqtt", "uplink", "device", "ha_"))}
    fw, _ = app.build(cfg_obj=plain, data_dir=data_dir, out=Null())
    full, errors = config.validate(cfg)
    assert not errors, errors
    return fw, full


def _feed(fw, src, buf):
    """The next block of records from the file into the firmware: how many (0 at its end)."""
    n = src.readinto(buf) // 24
    fw.records(buf, n, True)
    return n


def heap(cfg, data_dir, records, max_passes=4000):
    fw, full = _firmware(cfg, data_dir)
    buf = bytearray(256 * 24)
    src = open(records, "rb")
    for _ in range(20):
        _feed(fw, src, buf)
    gc.collect()
    before = gc.mem_alloc()
    up = uplink.attach(fw, full, data_dir)
    client = up.client
    started = time.ticks_ms()
    longest = 0
    step = client.step

    peak = 0

    def timed_step():  # the client's step, timed while it connects; the heap after each
        nonlocal longest, peak
        t0 = time.ticks_us()
        step()
        longest = max(longest, time.ticks_diff(time.ticks_us(), t0))
        gc.collect()
        peak = max(peak, gc.mem_alloc() - before)

    client.step = timed_step
    connect_ms = -1
    for _ in range(max_passes):
        if client.up and connect_ms < 0:
            connect_ms = time.ticks_diff(time.ticks_ms(), started)
            del client.step  # connected: the rest is not the handshake (the class's method again)
        if client.up and not up.journal.queued() and not up.in_n and not up.controls:
            break
        if not _feed(fw, src, buf):
            break
        time.sleep_ms(2)
    if connect_ms < 0:
        del client.step
    gc.collect()
    used = gc.mem_alloc() - before
    t = up.next_ds - 1
    up._second()
    err = "none"
    micropython.heap_lock()
    try:
        for _ in range(100):
            up._second()
            for _ in range(10):
                up.tick(t)
            time.sleep_ms(1)
    except MemoryError:
        err = "MemoryError"
    micropython.heap_unlock()
    print(json.dumps({"uplink_heap_bytes": used, "idle": err, "state": client.state, "connect_ms": connect_ms,
                      "longest_step_us": longest, "connect_heap_peak_bytes": peak}))


def loop_fps(cfg, data_dir, records, repeats=5):
    """The whole drive through Firmware.records, timed, without and then
    with the uplink (connected first: the handshake is not the loop's),
    ``repeats`` times each, alternating: the best frames per second of each
    (the machine's other work only ever slows a run). One JSON line."""
    import os

    best = {"off": 0, "on": 0}
    out = {}
    buf = bytearray(256 * 24)
    for r in range(repeats):
        for name in ("off", "on"):
            folder = "%s/%s%d" % (data_dir, name, r)
            os.mkdir(folder)
            fw, full = _firmware(cfg, folder)
            up = None
            if name == "on":
                up = uplink.attach(fw, full, folder)
                t0 = time.ticks_ms()
                while not up.client.up and time.ticks_diff(time.ticks_ms(), t0) < 10000:
                    up.tick(0)
                    time.sleep_ms(1)
            frames = 0
            with open(records, "rb") as src:
                t0 = time.ticks_us()
                k = 1
                while k:
                    k = _feed(fw, src, buf)
                    frames += k
            fps = frames * 1000000 // time.ticks_diff(time.ticks_us(), t0)
            best[name] = max(best[name], fps)
            if up is not None:
                out["journaled"] = up.seq
                out["sent_during_drive"] = up.sent
                out["connected"] = up.client.up
                up.client.disconnect()
    out["fps_uplink_off"] = best["off"]
    out["fps_uplink_on"] = best["on"]
    print(json.dumps(out))


class StandIn:
    """A connected broker that answers CONNECT with CONNACK and is then
    silent (qemu has no network)."""

    def __init__(self):
        self.reply = b""

    def write(self, buf, off=0, n=-1):
        if n < 0:
            n = len(buf) - off
        if buf[off] == 0x10:  # CONNECT
            self.reply = b"\x20\x02\x00\x00"
        return n

    def readinto(self, buf):
        if not self.reply:
            return None
        n = len(self.reply)
        buf[:n] = self.reply
        self.reply = b""
        return n

    def close(self):
        pass


class Writable:
    def ipoll(self, timeout):
        yield self, 4  # POLLOUT: connected


def idle_ticks(cfg, ticks=2000, repeats=3, data_dir="/uplink-bench"):
    """Instructions per idle tick, the mean of ``repeats`` runs each on a
    fresh firmware (MicroPython's map lookup cache is indexed by address:
    counts move a little with the heap's layout, as on_target.py's do)."""
    total = 0
    alloc = 0
    for _ in range(repeats):
        fw, full = _firmware(cfg, None)
        full["ha_discovery"] = False
        up = uplink.attach(fw, full, data_dir, connect=lambda host, port: (StandIn(), Writable()))
        t = 0
        for _ in range(50):  # connect, online, the first look at the car
            up.tick(t)
            t += 1
        assert up.client.state == _mqtt.UP and not up.controls, up.client.state
        gc.collect()
        a0 = gc.mem_alloc()
        t0 = time.ticks_us()
        for _ in range(ticks):
            up.tick(t)
            t += 1
        t1 = time.ticks_us()
        total += time.ticks_diff(t1, t0) * 1000 // ticks
        alloc = max(alloc, (gc.mem_alloc() - a0) // ticks)
    print("uplink " + json.dumps({"instr_per_tick_uplink_idle": total // repeats, "alloc_bytes_per_tick": alloc,
                                  "ticks": ticks, "repeats": repeats}))


if __name__ == "__main__":
    heap(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3])
