"""The stream frame record: how a host puts the firmware in the loop.

Fixed 24 bytes, little-endian:

=======  ====  ==================================================
bytes    type  meaning
=======  ====  ==================================================
0-7      u64   timestamp, microseconds
8-11     u32   CAN identifier (29 bits max)
12       u8    flags: bit0 extended id, bit1 remote (RTR), bit2 error frame,
                    bit7 control record (not a frame: the id field is a command)
13       u8    DLC (0-8)
14-15    u16   reserved, 0
16-23    8 B   data, zero padded
=======  ====  ==================================================

The host packs it with numpy (``keidrive.sil.RECORD_DTYPE``); the firmware
reads the timestamp's low 30 bits only (its wrapping clock, see compat.py),
so no value it keeps ever leaves the 31-bit small-int range of a board.
"""

from micropython import const

SIZE = const(24)
OFF_TIMESTAMP = const(0)
OFF_ID = const(8)
OFF_FLAGS = const(12)
OFF_DLC = const(13)
OFF_DATA = const(16)

FLAG_EXTENDED = const(1)
FLAG_REMOTE = const(2)
FLAG_ERROR = const(4)
FLAG_CONTROL = const(0x80)

# Control commands. END_OF_DRIVE: the harness has sent the whole drive (a
# hub keeps the socket open, so end of input cannot say it).
CONTROL_END_OF_DRIVE = const(2)
# SYNC: a lockstep barrier (keidrive.obdloop): the firmware's clock advances
# to the record's timestamp, due ticks run (their requests go out), then the
# record goes back through the port, after everything they sent.
CONTROL_SYNC = const(3)
# ACK: the harness asks what has been processed: the firmware prints
# {"type":"ack","records":N}, N the records it has taken before this one
# (all of them scanned, their due ticks run), so a host can wait for that
# instead of for the firmware to look idle.
CONTROL_ACK = const(4)
# UART: bytes the GNSS module's UART received (DLC of them in the data
# field), in the stream beside the frames (keifw/nmea.py reads them).
CONTROL_UART = const(5)
# 6 is CLAIM, the host's to the hub alone (keidrive.io.record): it never reaches a firmware.

# keys used by the generated decoders: id, or id | KEY_EXTENDED for 29-bit ids
KEY_EXTENDED = const(0x20000000)
