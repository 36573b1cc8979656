"""The 24-byte frame record shared by the hub, its clients and the firmware's
stream port (``firmware/keifw/record.py`` reads the same layout).

    offset  size  field
    0       8     timestamp, microseconds (u64, little-endian)
    8       4     CAN identifier (u32; 11 or 29 bits)
    12      1     flags: bit0 extended, bit1 remote (RTR), bit2 error frame,
                  bit7 control record (never a frame on the bus; the
                  identifier field holds the command)
    13      1     DLC (0-8)
    14      2     reserved, 0
    16      8     data, zero padded
"""

import struct

import numpy as np

RECORD = struct.Struct("<QIBBH8s")
SIZE = RECORD.size

FLAG_EXTENDED = 0x01
FLAG_REMOTE = 0x02
FLAG_ERROR = 0x04
FLAG_CONTROL = 0x80

# Control commands (identifier field of a control record).
CONTROL_STATS = 1  # to the hub: answer with frames carried and bus load
CONTROL_END_OF_DRIVE = 2  # to every other client: the drive is over (SIL: report the trip and exit)
CONTROL_SYNC = 3  # to the firmware: advance the clock to the timestamp, then echo this record (lockstep barrier)
CONTROL_ACK = 4  # to the firmware: print {"type": "ack", "records": N}, N the records taken before this one
CONTROL_UART = 5  # to the firmware: DLC bytes its GNSS module's UART received (keidrive.gps.nmea)
CONTROL_CLAIM = 6  # to the hub: this client drives the channel; answered granted, or refused while another does

# A numpy view of many records at once, for the simulator's bulk traffic.
DTYPE = np.dtype(
    [
        ("timestamp_us", "<u8"),
        ("can_id", "<u4"),
        ("flags", "u1"),
        ("dlc", "u1"),
        ("reserved", "<u2"),
        ("data", "u1", (8,)),
    ]
)
assert DTYPE.itemsize == SIZE


def from_frames(frames) -> np.ndarray:
    """Records from frame arrays (``timestamp`` s, ``arbitration_id``,
    ``is_extended``, ``dlc``, ``data`` N x 8), e.g. the simulator's."""
    timestamps = np.asarray(frames["timestamp"], dtype=np.float64)
    records = np.zeros(timestamps.size, dtype=DTYPE)
    records["timestamp_us"] = np.round(timestamps * 1e6).astype(np.uint64)
    records["can_id"] = frames["arbitration_id"]
    records["flags"] = np.where(frames["is_extended"], FLAG_EXTENDED, 0)
    records["dlc"] = frames["dlc"]
    records["data"] = frames["data"]
    return records


def pieces_from_frames(pieces):
    """Records of each piece of frame arrays (``sim.Simulation``) as it comes."""
    for frames in pieces:
        yield from_frames(frames)


def from_messages(messages) -> np.ndarray:
    """Records from python-can Messages (a drive log), a field at a time."""
    messages = messages if isinstance(messages, list) else list(messages)
    records = np.zeros(len(messages), dtype=DTYPE)
    records["timestamp_us"] = [round(msg.timestamp * 1e6) for msg in messages]
    records["can_id"] = [msg.arbitration_id for msg in messages]
    records["flags"] = [
        (FLAG_EXTENDED if msg.is_extended_id else 0)
        | (FLAG_REMOTE if msg.is_remote_frame else 0)
        | (FLAG_ERROR if msg.is_error_frame else 0)
        for msg in messages
    ]
    records["dlc"] = [min(msg.dlc, 8) for msg in messages]
    data = b"".join([bytes(msg.data[:8]).ljust(8, b"\0") for msg in messages])
    records["data"] = np.frombuffer(data, np.uint8).reshape(-1, 8)
    return records


def to_messages(records):
    """python-can Messages from records (the inverse of ``from_messages``)."""
    import can

    for row in records:
        flags = int(row["flags"])
        dlc = int(row["dlc"])
        yield can.Message(
            timestamp=row["timestamp_us"] / 1e6,
            arbitration_id=int(row["can_id"]),
            is_extended_id=bool(flags & FLAG_EXTENDED),
            is_remote_frame=bool(flags & FLAG_REMOTE),
            is_error_frame=bool(flags & FLAG_ERROR),
            dlc=dlc,
            data=bytes(row["data"][: min(dlc, 8)]),
        )


def control(command: int) -> bytes:
    return pack(0, command, FLAG_CONTROL, 0, b"")


def pack(timestamp_us: int, can_id: int, flags: int, dlc: int, data: bytes) -> bytes:
    return RECORD.pack(timestamp_us, can_id, flags, dlc, 0, bytes(data))


def unpack(record) -> tuple:
    """(timestamp_us, can_id, flags, dlc, data[:dlc])."""
    timestamp_us, can_id, flags, dlc, _, data = RECORD.unpack(record)
    return timestamp_us, can_id, flags, dlc, data[: min(dlc, 8)]


def arbitration_key(can_id: int, flags: int) -> int:
    """Smaller wins arbitration.

    The 11-bit base identifier goes first; a standard frame beats an extended
    one with the same base (its IDE bit is dominant), and a data frame beats
    a remote frame with the same identifier (RTR dominant).
    """
    extended = flags & FLAG_EXTENDED
    if extended:
        base, low = can_id >> 18, can_id & 0x3FFFF
    else:
        base, low = can_id, 0
    return ((((base << 1) | (1 if extended else 0)) << 18 | low) << 1) | (1 if flags & FLAG_REMOTE else 0)


def arbitration_keys(can_id: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """``arbitration_key`` of many records at once."""
    ids = np.asarray(can_id, np.uint64)
    extended = (np.asarray(flags) & FLAG_EXTENDED) != 0
    remote = ((np.asarray(flags) & FLAG_REMOTE) != 0).astype(np.uint64)
    base = np.where(extended, ids >> np.uint64(18), ids)
    low = np.where(extended, ids & np.uint64(0x3FFFF), np.uint64(0))
    key = (base << np.uint64(1)) | extended.astype(np.uint64)
    return (((key << np.uint64(18)) | low) << np.uint64(1)) | remote


def bus_order(records: np.ndarray) -> np.ndarray:
    """``records`` as a bus delivers them when they are queued together:
    records of the same timestamp in arbitration order, as the hub sends
    them (lowest ``arbitration_key`` first, the queued order among equals);
    a timestamp going backwards is the sender's business and stays."""
    stamps = records["timestamp_us"]
    if len(stamps) < 2:
        return records
    same = stamps[1:] == stamps[:-1]
    if not same.any():
        return records
    # only the records that share a timestamp with a neighbour move
    tied = np.flatnonzero(np.concatenate(([False], same)) | np.concatenate((same, [False])))
    runs = np.cumsum(np.concatenate(([True], ~same))[tied])
    keys = arbitration_keys(records["can_id"][tied], records["flags"][tied])
    ordered = records.copy()
    ordered[tied] = records[tied[np.lexsort((tied, keys, runs))]]
    return ordered


def frame_bits(flags: int, dlc: int) -> int:
    """Bits a frame occupies on the wire, worst-case bit stuffing included.

    Standard data frame: 44 + 8*n bits before stuffing, extended 64 + 8*n; the
    stuffable part (SOF to CRC) gains at most one bit in four after the first
    (the classic bound (34 + 8n - 1) / 4 for standard frames). Three bits of
    interframe space follow every frame.
    """
    n = 0 if flags & FLAG_REMOTE else min(dlc, 8)
    if flags & FLAG_EXTENDED:
        stuffable, fixed = 54 + 8 * n, 10
    else:
        stuffable, fixed = 34 + 8 * n, 10
    return stuffable + (stuffable - 1) // 4 + fixed + 3
