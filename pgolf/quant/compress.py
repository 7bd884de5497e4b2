"""Byte compressors, registered by name. zlib-9 is the baseline's; lzma, zstd and brotli are the
later records' choices (docs/techniques.md); `pergroup` is the 1.0611 record's per-group coding
(pgolf.quant.pergroup)."""

from __future__ import annotations

import importlib
import importlib.util
import lzma
import zlib
from dataclasses import dataclass
from typing import Callable

from pgolf.errors import ConfigError
from pgolf.registry import Registry


@dataclass(frozen=True)
class Compressor:
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


COMPRESSORS: Registry[Compressor] = Registry("compressor")

COMPRESSORS.register("zlib")(Compressor(lambda b: zlib.compress(b, 9), zlib.decompress))
COMPRESSORS.register("lzma")(Compressor(
    lambda b: lzma.compress(b, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME), lzma.decompress))


def import_optional(module: str, package: str):
    """Import a compressor's library when it is first used, so a missing one only matters then."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"compressor {module!r} needs the {package!r} package (pip install {package}); "
                          "or choose zlib or lzma") from None


# Compressors whose library is a separate package (imported when first used): name -> module.
PACKAGE_OF = {"zstd": "zstandard", "brotli": "brotli", "pergroup": "brotli"}
# Packages a compressor may also use (pergroup's ans backend), listed in a submission's requirements.
ALSO_USES = {"pergroup": ("constriction",)}


def available(name: str) -> bool:
    module = PACKAGE_OF.get(name)
    return module is None or importlib.util.find_spec(module) is not None


COMPRESSORS.register("zstd")(Compressor(
    lambda b: import_optional("zstandard", "zstandard").ZstdCompressor(level=22).compress(b),
    lambda b: import_optional("zstandard", "zstandard").ZstdDecompressor().decompress(b)))
COMPRESSORS.register("brotli")(Compressor(
    lambda b: import_optional("brotli", "brotli").compress(b, quality=11),
    lambda b: import_optional("brotli", "brotli").decompress(b)))


def _pergroup_compress(body: bytes) -> bytes:
    from pgolf.quant.pergroup import pergroup_compress

    return pergroup_compress(body)


def _pergroup_decompress(data: bytes) -> bytes:
    from pgolf.quant.pergroup import pergroup_decompress

    return pergroup_decompress(data)


COMPRESSORS.register("pergroup")(Compressor(_pergroup_compress, _pergroup_decompress))
