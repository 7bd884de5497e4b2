"""Bit-packing of signed integers, so an int6 weight costs 6 bits (4 values in 3 bytes) and an
int5 weight 5 bits (8 values in 5 bytes) before the compressor.

Values in [−2^(b−1), 2^(b−1)) are offset to unsigned, their b low bits laid out little-endian one
after another, and the bit stream cut into bytes. Written with numpy's packbits/unpackbits: no
library packs arbitrary bit widths, and this is exact and vectorised.
"""

from __future__ import annotations

import numpy as np


def pack_signed(q: np.ndarray, bits: int) -> np.ndarray:
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    flat = np.asarray(q, dtype=np.int16).reshape(-1)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if flat.size and (flat.min() < lo or flat.max() > hi):
        raise ValueError(f"values outside the signed {bits}-bit range [{lo}, {hi}]")
    u = (flat - lo).astype(np.uint8)
    stream = np.unpackbits(u[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(stream.reshape(-1), bitorder="little")


def unpack_signed(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    stream = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")[: count * bits]
    if stream.size != count * bits:
        raise ValueError(f"packed buffer holds {stream.size} bits, {count * bits} needed")
    u = np.packbits(stream.reshape(count, bits), axis=1, bitorder="little").reshape(-1)
    return u.astype(np.int16) - (1 << (bits - 1))


def packed_nbytes(count: int, bits: int) -> int:
    return (count * bits + 7) // 8
