"""The runtime every generated vehicle module shares (hand-written, not generated).

A module made by ``keidrive dbc compile`` holds only its tables, two viper
functions (``decode_at``, ``_encode_at``) and ``dispatch``; everything else is
here once, bound to the module's tables by ``bind(globals())`` at import:

    new_values, frame_key, encode, checksum, checksum_ok,
    raw_value, physical, frame_slots, decode

Hot path (allocation-free): ``encode(index, values, buf)``; received frames
go through the module's own ``dispatch`` or, in the firmware, ``decode_at``.
Debug path (allocates): ``raw_value``, ``physical``, ``frame_slots``, ``decode``.
"""

import array
import struct


def bind(g):
    """The runtime functions over the generated module namespace ``g``: bound methods of one
    Codec (a closure over the tables would allocate per call in MicroPython; a bound method
    of at most four arguments does not)."""
    c = Codec(g)
    return (c.new_values, c.frame_key, c.encode, c.checksum, c.checksum_ok,
            c.raw_value, c.physical, c.frame_slots, c.decode)


class Codec:
    def __init__(self, g):
        self.n_slots = g["N_SLOTS"]
        self.extended_flag = g["EXTENDED_KEY_FLAG"]
        self.msg_key = g["MSG_KEY"]
        masks = g.get("MSG_KEY_MASK") or {}
        # J1939 parameter groups: (key & mask, mask, index), matched when an exact key is not
        self.wide = [(k & masks[i], masks[i], i) for k, i in self.msg_key.items() if i in masks]
        self.msg_len = g["MSG_LEN"]
        self.msg_tx = g["MSG_TX"]
        self.msg_layout = g["MSG_LAYOUT"]
        self.counter_slot = g["MSG_COUNTER_SLOT"]
        self.counter_bits = g["MSG_COUNTER_BITS"]
        self.checksum_slot = g["MSG_CHECKSUM_SLOT"]
        self.checksum_byte = g["MSG_CHECKSUM_BYTE"]
        self.checksum_kind = g["MSG_CHECKSUM_ALGORITHM"]
        self.checksum_seed = g["MSG_CHECKSUM_SEED"]
        self.algorithms = g["CHECKSUM_ALGORITHMS"]
        self.slot_limbs = g["SLOT_LIMBS"]
        self.slot_bits = g["SLOT_BITS"]
        self.slot_signed = g["SLOT_SIGNED"]
        self.slot_signal = g["SLOT_SIGNAL"]
        self.float_slots = g["FLOAT_SLOTS"]
        self.scale_num = g["SCALE_NUM"]
        self.scale_den = g["SCALE_DEN"]
        self.offset_num = g["OFFSET_NUM"]
        self.offset_den = g["OFFSET_DEN"]
        self.decode_at = g["decode_at"]
        self.encode_at = g["_encode_at"]

    def new_values(self):
        """A zeroed raw-value array of N_SLOTS 32-bit ints."""
        return array.array("i", bytes(4 * self.n_slots))

    def frame_key(self, frame_id, extended):
        return frame_id | self.extended_flag if extended else frame_id

    def checksum(self, index, data):
        """The CHECKSUM the frame ``data`` of message ``index`` should carry.

        Kinds: 0 a table-driven CRC-8 over every byte but the checksum byte;
        1 Toyota's byte sum; 2 Honda's nibble sum (the checksum is the low
        nibble of its byte). The seed holds the CRC init or the id's part.
        """
        kind = self.checksum_kind[index]
        if kind < 0:
            raise ValueError("message has no checksum")
        algorithm, table, xorout = self.algorithms[kind]
        skip = self.checksum_byte[index]
        total = self.checksum_seed[index]
        for k in range(self.msg_len[index]):
            x = data[k]
            if algorithm == 0:
                if k != skip:
                    total = table[total ^ x]
            elif algorithm == 1:
                if k != skip:
                    total += x
            else:
                if k == skip:
                    x >>= 4
                total += (x & 15) + (x >> 4)
        if algorithm == 0:
            return total ^ xorout
        if algorithm == 1:
            return total & 0xFF
        return -total & 15

    def checksum_ok(self, index, data):
        at = self.checksum_byte[index]
        field = data[at] & 15 if self.algorithms[self.checksum_kind[index]][0] == 2 else data[at]
        return self.checksum(index, data) == field

    def encode(self, index, values, buf):
        """Write the frame of a TX message into ``buf``; returns its length.

        The COUNTER goes out as it is in ``values`` and is then advanced
        (mod 2**bits) for the next frame; the CHECKSUM is computed and also
        stored in ``values``.
        """
        if not self.msg_tx[index]:
            raise ValueError("not a TX message")
        self.encode_at(index, values, buf)
        slot = self.counter_slot[index]
        if slot >= 0:
            values[slot] = (values[slot] + 1) & ((1 << self.counter_bits[index]) - 1)
        at = self.checksum_byte[index]
        if at >= 0:
            value = self.checksum(index, buf)
            if self.algorithms[self.checksum_kind[index]][0] == 2:
                buf[at] = (buf[at] & 0xF0) | value  # a nibble sum fills the low nibble
            else:
                buf[at] = value
            values[self.checksum_slot[index]] = value
        return self.msg_len[index]

    def raw_value(self, values, slot):
        """The exact raw value of the signal owning ``slot`` (joins limbs; may allocate).

        For an IEEE float signal: its bit pattern, unsigned.
        """
        limbs = self.slot_limbs[slot]
        if limbs == 1:
            return values[slot]
        raw = 0
        for k in range(limbs - 1, -1, -1):
            raw = (raw << 16) | (values[slot + k] & 0xFFFF)
        bits = self.slot_bits[slot]
        if self.slot_signed[slot] and raw >> (bits - 1):
            raw -= 1 << bits
        return raw

    def physical(self, values, slot):
        """Scaled value: an int when scale and offset are integers (as cantools), else a float."""
        raw = self.raw_value(values, slot)
        sn = self.scale_num[slot]
        sd = self.scale_den[slot]
        on = self.offset_num[slot]
        od = self.offset_den[slot]
        if slot in self.float_slots:
            if self.slot_bits[slot] == 32:
                value = struct.unpack("<f", struct.pack("<I", raw))[0]
            else:
                value = struct.unpack("<d", struct.pack("<Q", raw))[0]
            if sn == sd and on == 0:
                return value
            return value * (sn / sd) + on / od
        if sd == 1 and od == 1:
            return raw * sn + on
        # One division of the exact rational: a single rounding.
        return (raw * sn * od + on * sd) / (sd * od)

    def _layout_slots(self, values, layout, out):
        slots, muxes = layout
        out.extend(slots)
        for mux_slot, pages in muxes:
            page = values[mux_slot]
            for page_values, page_layout in pages:
                if page in page_values:
                    if not self._layout_slots(values, page_layout, out):
                        return False
                    break
            else:
                return False
        return True

    def frame_slots(self, index, values):
        """The slots of the signals a frame of ``index`` just decoded into ``values`` carries,
        or None when a multiplexer value has no page (cantools raises DecodeError)."""
        out = []
        return out if self._layout_slots(values, self.msg_layout[index], out) else None

    def decode(self, frame_id, data, extended=False):
        """Debug path: {signal: physical value} as cantools decode_message(decode_choices=False).

        None for an unknown id, data shorter than the message, or a multiplexer
        value with no page (cantools raises DecodeError for those).
        """
        key = self.frame_key(frame_id, extended)
        index = self.msg_key.get(key, -1)
        for value, mask, i in self.wide:
            if index < 0 and key & mask == value:
                index = i
        if index < 0 or len(data) < self.msg_len[index]:
            return None
        values = self.new_values()
        self.decode_at(~index, data, 0, values)
        slots = self.frame_slots(index, values)
        if slots is None:
            return None
        return {self.slot_signal[slot]: self.physical(values, slot) for slot in slots}
