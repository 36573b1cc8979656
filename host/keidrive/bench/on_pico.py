# MicroPython, run on the emulated Pico by keidrive.bench.pico through the
# raw REPL after a soft reset (not imported on the host). It builds the
# firmware as main.py does (the config's MCP2515 on SPI0, the trip store in
# /data) and runs the board loop twice, printing one JSON line per phase;
# the host puts frames on the chip's bus when it reads "ready" and
# "saturate", and counts the cycles.
#
# drive: the drive's frames at their own times; after every pass of
#   app.run_port the free heap and the bytes allocated are read, until the
#   bus has been quiet for QUIET_MS. heap_free_min is the lowest
#   gc.mem_free() seen; a pass that allocated would show as less free heap
#   (no collection runs unless the heap fills), so it is also the most the
#   firmware held.
# saturate: app.run_port alone, as main.py runs it (nothing added to the
#   pass), until the host types Ctrl-C.
# Before both, the machine.CAN port's read (the RP2040 has no machine.CAN):
#   over a stand-in controller whose recv(list) always has a frame, less the
#   stand-in's own calls timed alone, in cycles of the 125 MHz core.
import gc
import time

CFG = {}  # the host puts the firmware config here
QUIET_MS = 1500

gc.collect()
FRESH = gc.mem_free()
from keifw import app  # noqa: E402
import main  # noqa: E402  (the frozen main.py: open_port, as at boot)

gen = app.vehicle_module(CFG["vehicle"])
port, why = main.open_port(CFG, gen)
if port is None:
    raise OSError(why)
fw, _ = app.build(cfg_obj=CFG, data_dir="/data", port=port)


class StandIn:
    """machine.CAN's recv(list) (v1.28) with a standard frame always there."""

    FLAG_RTR = 1
    FLAG_EXT_ID = 2

    def __init__(self):
        self.data = memoryview(bytearray(8))

    def set_filters(self, filters):
        pass

    def recv(self, r):
        r[0] = 0x130
        r[1] = self.data
        r[2] = 0
        r[3] = 0
        return r


def machine_can_cycles(frames):
    from keifw.canport import MachineCANPort

    stand_in = StandIn()
    can_port = MachineCANPort(gen, can=stand_in)
    block = fw.block
    rx = can_port.rx
    t0 = time.ticks_us()
    for _ in range(frames // 32):
        can_port.read(block)
    t1 = time.ticks_us()
    for _ in range(frames):
        stand_in.recv(rx)
    t2 = time.ticks_us()
    return (time.ticks_diff(t1, t0) - time.ticks_diff(t2, t1)) * 125 // frames


can_cycles = machine_can_cycles(4096)
gc.collect()
print('{"bench":"ready","heap_free_fresh":%d,"heap_free_after_boot":%d,"spi":"%s","machine_can_cycles":%d}'
      % (FRESH, gc.mem_free(), repr(port.spi), can_cycles))


class Watch:
    """run_port's stop: heap and allocation after every pass, the end once the bus is quiet."""

    def __init__(self):
        self.min_free = gc.mem_free()
        self.seen = 0
        self.quiet_since = time.ticks_ms()
        self.first = -1  # gc.mem_alloc() at the first pass with frames
        self.last = 0
        self.counted = 0  # frames between those two passes

    def __call__(self):
        free = gc.mem_free()
        if free < self.min_free:
            self.min_free = free
        n = port.frames
        now = time.ticks_ms()
        if n != self.seen:
            if self.first < 0:
                self.first = gc.mem_alloc()
                self.counted = -n
            self.last = gc.mem_alloc()
            self.seen = n
            self.quiet_since = now
            return False
        return n > 0 and time.ticks_diff(now, self.quiet_since) > QUIET_MS


watch = Watch()
app.run_port(fw, port, watch)
frames = watch.seen + watch.counted
print('{"bench":"saturate","heap_free_min":%d,"alloc_bytes":%d,"alloc_frames":%d,"drive_frames":%d,'
      '"drive_overruns":%d}' % (watch.min_free, watch.last - watch.first, frames, watch.seen, port.overruns))
start = port.frames
overruns = port.overruns
try:
    app.run_port(fw, port)
except KeyboardInterrupt:
    pass
print('{"bench":"done","frames":%d,"overruns":%d}' % (port.frames - start, port.overruns - overruns))
