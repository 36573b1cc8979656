"""Vectorised CAN frame encoding straight from a DBC.

``MessageCodec(message)`` precomputes a cantools ``Message``'s layout;
``codec.encode(values, frame_index)`` turns arrays of physical values (one
per signal, one element per frame) into an ``N x 8`` uint8 array: each value
is quantised with the DBC's scale/offset (rounded to nearest, clipped to the
signal's range), packed per its Intel or Motorola layout with integer
arithmetic on uint64 words, the ``COUNTER`` set to ``frame_index mod 2**bits``
and the ``CHECKSUM`` filled by the algorithm the message attribute
``ChecksumAlgorithm`` (or a roles file's [checksum]) names, with the
compiler's implementation of it (dbccompiler/checksum.py: CRC-8/SAE-J1850,
Toyota's byte sum, Honda's nibble sum), the one the firmware's checks are
built from. Multiplexed signals are only written in frames whose
multiplexer selects them. Tests check every message against
``cantools.decode``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..dbccompiler import checksum
from ..errors import KeidriveError
from ..paths import dbc_dir
from . import tables


def _dbc_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    return path if path.is_file() else dbc_dir() / name_or_path


@functools.lru_cache(maxsize=16)
def load_dbc(name_or_path: str):
    import cantools  # here, not at import: a run's codecs come from the cache (sim.tables)

    path = _dbc_path(name_or_path)
    try:
        return cantools.database.load_file(str(path))
    except (OSError, cantools.database.UnsupportedDatabaseFormatError) as e:
        raise KeidriveError(f"cannot load DBC {path}: {e}") from None


def _checksum_algorithm(msg) -> str:
    attrs = msg.dbc.attributes if msg.dbc else {}
    if checksum.ATTRIBUTE not in attrs:
        return checksum.NO_CHECKSUM
    value = attrs[checksum.ATTRIBUTE].value
    if isinstance(value, int):
        defn = attrs[checksum.ATTRIBUTE].definition
        choices = list(getattr(defn, "choices", None) or [checksum.NO_CHECKSUM, "CRC8_SAEJ1850"])
        return choices[value] if value < len(choices) else checksum.NO_CHECKSUM
    return str(value)


class _Sig:
    __slots__ = ("name", "shift", "mask", "big", "signed", "scale", "offset", "lo", "hi", "mux_ids", "length")

    def __init__(self, s):
        self.name = s.name
        self.length = s.length
        self.big = s.byte_order == "big_endian"
        if self.big:
            msb = (7 - s.start // 8) * 8 + s.start % 8
            self.shift = msb - s.length + 1
        else:
            self.shift = s.start
        self.mask = (1 << s.length) - 1
        self.signed = s.is_signed
        self.scale = float(s.scale)
        self.offset = float(s.offset)
        raw_lo = -(1 << (s.length - 1)) if s.is_signed else 0
        raw_hi = (1 << (s.length - 1)) - 1 if s.is_signed else self.mask
        lo, hi = raw_lo, raw_hi
        if s.minimum is not None:
            lo = max(lo, int(np.ceil((s.minimum - self.offset) / self.scale - 1e-9)))
        if s.maximum is not None:
            hi = min(hi, int(np.floor((s.maximum - self.offset) / self.scale + 1e-9)))
        self.lo, self.hi = lo, hi
        self.mux_ids = s.multiplexer_ids


class MessageCodec:
    def __init__(self, msg, checksum_name: str | None = None):
        """``checksum_name``: the CHECKSUM algorithm a roles file names, over the DBC's attribute."""
        self.msg = msg
        self.name = msg.name
        self.frame_id = msg.frame_id
        self.is_extended = msg.is_extended_frame
        self.length = msg.length
        self.cycle_ms = msg.cycle_time or 0
        self.signals = [_Sig(s) for s in msg.signals]
        self.mux = next((s for s in self.signals if any(x.is_multiplexer for x in msg.signals if x.name == s.name)), None)
        self.counter = next((s for s in self.signals if s.name == "COUNTER"), None)
        name = checksum.canonical_name(checksum_name or _checksum_algorithm(msg))
        self.algorithm = checksum.ALGORITHMS.get(name)
        from ..dbccompiler.load import CHECKSUM_NAME  # here: a codec from the cache is built without cantools

        # the signal the compiler takes as the CHECKSUM (dbccompiler/load.py's name rule)
        found = [s for s in self.signals if CHECKSUM_NAME.search(s.name)]
        self.checksum = found[0] if self.algorithm is not None and len(found) == 1 else None
        if self.checksum is not None:
            bit = self.checksum.shift
            self.checksum_byte = 7 - bit // 8 if self.checksum.big else bit // 8
        self.value_signals = [s for s in self.signals if s not in (self.counter, self.checksum)]

    def __getstate__(self):
        # what encoding needs, without the cantools message: a cached codec loads without cantools
        return {**self.__dict__, "msg": None}

    def raw(self, sig: _Sig, phys) -> np.ndarray:
        r = np.rint((np.asarray(phys, np.float64) - sig.offset) / sig.scale)
        r = np.clip(r, sig.lo, sig.hi).astype(np.int64)
        return r

    @staticmethod
    def _place(acc_le, acc_be, sig: _Sig, raw):
        word = (raw.astype(np.int64) & sig.mask).astype(np.uint64) << np.uint64(sig.shift)
        if sig.big:
            acc_be |= word
        else:
            acc_le |= word

    def encode(self, values: dict, frame_index: np.ndarray) -> np.ndarray:
        n = len(frame_index)
        acc_le = np.zeros(n, np.uint64)
        acc_be = np.zeros(n, np.uint64)
        mux_raw = None
        if self.mux is not None:
            mux_raw = self.raw(self.mux, values[self.mux.name])
        for s in self.value_signals:
            v = values.get(s.name)
            if v is None:
                v = np.full(n, max(0.0, s.lo * s.scale + s.offset) if s.lo * s.scale + s.offset <= 0 <= s.hi * s.scale + s.offset else s.lo * s.scale + s.offset)
            raw = self.raw(s, np.broadcast_to(v, (n,)))
            if s.mux_ids is not None and mux_raw is not None:
                raw = np.where(np.isin(mux_raw, s.mux_ids), raw, 0)
            self._place(acc_le, acc_be, s, raw)
        if self.counter is not None:
            self._place(acc_le, acc_be, self.counter, np.asarray(frame_index, np.int64) & self.counter.mask)
        data = self._bytes(acc_le, acc_be)
        if self.checksum is not None:
            value = self.algorithm.compute(data[:, : self.length], self.checksum_byte, self.frame_id, self.is_extended)
            self._place(acc_le, acc_be, self.checksum, value.astype(np.int64))
            data = self._bytes(acc_le, acc_be)
        return data[:, : self.length] if self.length < 8 else data

    @staticmethod
    def _bytes(acc_le, acc_be) -> np.ndarray:
        le = acc_le.astype("<u8").view(np.uint8).reshape(-1, 8)
        be = acc_be.astype(">u8").view(np.uint8).reshape(-1, 8)
        return le | be


@functools.lru_cache(maxsize=16)
def codecs_for(dbc_name: str) -> tuple:
    path = _dbc_path(dbc_name)
    if not path.is_file():
        return tuple(MessageCodec(m) for m in load_dbc(dbc_name).messages)  # load_dbc says why
    return tables.cached(path, lambda: tuple(MessageCodec(m) for m in load_dbc(dbc_name).messages))
