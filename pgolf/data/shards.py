"""The contest's token shard format.

A shard is a 1024-byte header of 256 little-endian int32 (magic 20240520, version 1, token count,
then zeros) followed by `count` little-endian uint16 token ids. Files are named
`fineweb_{train,val}_NNNNNN.bin`. Readers memory-map the body; every malformed file raises a
`ShardError` that names the file and the problem.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from pgolf.errors import DataError, ShardError
from pgolf.io import atomic_write

SHARD_MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")
MAX_VOCAB = 1 << 16
SPLITS = ("train", "val")
_NAME = re.compile(r"^fineweb_(train|val)_(\d{6})\.bin$")


def shard_name(split: str, index: int) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return f"fineweb_{split}_{index:06d}.bin"


def sidecar_path(shard: str | os.PathLike) -> Path:
    """`fineweb_val_000003.bin` -> `fineweb_val_bytes_000003.bin` (data/sidecar.py), same folder."""
    shard = Path(shard)
    m = _NAME.match(shard.name)
    if not m:
        raise ValueError(f"{shard.name}: not a shard name")
    return shard.with_name(f"fineweb_{m.group(1)}_bytes_{m.group(2)}.bin")


def read_header(path: str | os.PathLike) -> int:
    """Validate a shard's header against its file size and return its token count."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except FileNotFoundError:
        raise ShardError(path, "file not found") from None
    except IsADirectoryError:
        raise ShardError(path, "is a directory, not a shard file") from None
    if len(raw) < HEADER_BYTES:
        raise ShardError(path, f"truncated header: {len(raw)} of {HEADER_BYTES} bytes")
    header = np.frombuffer(raw, dtype="<i4")
    if int(header[0]) != SHARD_MAGIC:
        raise ShardError(path, f"bad magic {int(header[0])} (expected {SHARD_MAGIC}); not a token shard")
    if int(header[1]) != VERSION:
        raise ShardError(path, f"unsupported shard version {int(header[1])} (expected {VERSION})")
    count = int(header[2])
    if count < 0:
        raise ShardError(path, f"negative token count {count} in header")
    expected = HEADER_BYTES + 2 * count
    if size < expected:
        raise ShardError(
            path, f"truncated: header says {count} tokens ({expected} bytes) but file has {size} bytes"
        )
    if size > expected:
        raise ShardError(
            path, f"size mismatch: header says {count} tokens ({expected} bytes) but file has {size} bytes"
        )
    return count


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a shard's tokens (read-only uint16 array) after validating its header."""
    count = read_header(path)
    if count == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(count,))


def write_shard(path: str | os.PathLike, tokens: np.ndarray) -> None:
    """Write tokens as a shard, whole or not at all (pgolf.io: temporary file, fsync, rename)."""
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= MAX_VOCAB):
        raise DataError(f"{path}: token ids must lie in [0, {MAX_VOCAB}) to fit uint16")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, VERSION, tokens.size

    def write(f) -> None:
        f.write(header.tobytes())
        f.write(tokens.astype(TOKEN_DTYPE, copy=False).tobytes())

    atomic_write(path, write)


def list_shards(directory: str | os.PathLike, split: str) -> list[Path]:
    """The shards of one split in a directory, in index order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: data directory not found")
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and m.group(1) == split:
            found.append((int(m.group(2)), p))
    return [p for _, p in sorted(found)]


def load_split(directory: str | os.PathLike, split: str) -> np.ndarray:
    """All tokens of a split concatenated into memory (validation is small enough for this)."""
    paths = list_shards(directory, split)
    if not paths:
        raise DataError(f"{directory}: no fineweb_{split}_*.bin shards found")
    parts = [np.asarray(read_shard(p)) for p in paths]
    tokens = np.concatenate(parts) if len(parts) > 1 else np.array(parts[0])
    if tokens.size == 0:
        raise DataError(f"{directory}: the {split} split is empty")
    return tokens


def check_vocab(tokens: np.ndarray, vocab_size: int, what: str) -> None:
    """Refuse token ids the model cannot embed, instead of an index error deep in a forward pass."""
    if tokens.size and int(tokens.max()) >= vocab_size:
        bad = int(tokens.max())
        raise DataError(
            f"{what}: token id {bad} >= model vocab {vocab_size}; "
            "the shards were built with a larger tokenizer than the model expects"
        )
