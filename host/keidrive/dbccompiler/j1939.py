"""J1939 parameter groups: a message of a DBC whose ``VFrameFormat`` is ``J1939PG`` is matched on
its PGN, not on its whole 29-bit id.

A J1939 id is priority (bits 26-28), data page bits (24-25), PDU format PF
(16-23), PDU specific PS (8-15) and the sender's source address (0-7). The
DBC fixes one priority and source address in each id; a truck's ECUs send
the same parameter group with their own. So a frame matches on the data
page, PF and, for PDU2 (PF >= 240), PS, its group extension; for PDU1 (PF
< 240) PS is the destination address, masked too. A roles file's [source]
pins a message to one source address.
"""

# Frame keys carry the extended flag in bit 29 (load.EXTENDED_KEY_FLAG): it is matched too.
_KIND = 0x20000000
PDU1_MASK = 0x03FF0000
PDU2_MASK = 0x03FFFF00
SOURCE_MASK = 0xFF
PDU2_FIRST_PF = 240


def pgn_mask(frame_id: int) -> int:
    """The id bits that name a frame's parameter group."""
    return PDU1_MASK if (frame_id >> 16) & 0xFF < PDU2_FIRST_PF else PDU2_MASK


def key_mask(frame_id: int, source: int | None) -> int:
    """The bits of a frame key a J1939 message matches on, the source address with them when pinned."""
    return _KIND | pgn_mask(frame_id) | (SOURCE_MASK if source is not None else 0)


def is_j1939(message) -> bool:
    """A message cantools read as a J1939 parameter group (VFrameFormat J1939PG), 29-bit."""
    return message.is_extended_frame and getattr(message, "protocol", None) == "j1939"


def parameter_group(frame_id: int) -> int:
    """A 29-bit id with priority, source address and (PDU1) destination cleared: what a
    J1939 message of any sender and priority shares."""
    return frame_id & pgn_mask(frame_id)
