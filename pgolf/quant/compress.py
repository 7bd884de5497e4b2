"""Byte compressors, registered by name. zlib-9 is the baseline's; lzma, zstd and brotli are the
later records' choices (techniques.md §5.8)."""

from __future__ import annotations

import lzma
import zlib
from dataclasses import dataclass
from typing import Callable

from pgolf.registry import Registry


@dataclass(frozen=True)
class Compressor:
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


COMPRESSORS: Registry[Compressor] = Registry("compressor")

COMPRESSORS.register("zlib")(Compressor(lambda b: zlib.compress(b, 9), zlib.decompress))
COMPRESSORS.register("lzma")(Compressor(
    lambda b: lzma.compress(b, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME), lzma.decompress))


def _zstd() -> Compressor:
    import zstandard

    return Compressor(lambda b: zstandard.ZstdCompressor(level=22).compress(b),
                      lambda b: zstandard.ZstdDecompressor().decompress(b))


def _brotli() -> Compressor:
    import brotli

    return Compressor(lambda b: brotli.compress(b, quality=11), brotli.decompress)


COMPRESSORS.register("zstd")(_zstd())
COMPRESSORS.register("brotli")(_brotli())
