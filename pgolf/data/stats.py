"""`pgolf data stats`: tokens, documents and counted bytes per split of a shard directory."""

from __future__ import annotations

import os

import numpy as np

from pgolf.data.bpb import target_bytes
from pgolf.data.build import read_manifest
from pgolf.data.shards import SPLITS, list_shards, read_shard, sidecar_path
from pgolf.data.tokenizer import build_byte_tables, load_tokenizer

HIDDEN_WARN_FRACTION = 0.001
CHUNK = 1 << 22


def split_stats(data_dir: str | os.PathLike, tokenizer_path: str | os.PathLike) -> dict:
    """Count each split's tokens, documents (BOS tokens), counted bytes and <unk> tokens.

    Counted bytes are the contest's: every target token (all tokens but the first of the
    stream) credited with its bytes given the token before it. Bytes hidden inside <unk> cannot
    be recovered from token ids; they come from the build manifest when there is one. Data built
    with a text transform is counted from its byte sidecar (validation) or its manifest (training),
    since its pieces' spellings are not the original text.
    """
    sp = load_tokenizer(tokenizer_path)
    tables = build_byte_tables(sp)
    bos, unk = sp.bos_id(), sp.unk_id()
    manifest = read_manifest(data_dir) or {}
    result: dict = {"data_dir": str(data_dir), "tokenizer": str(tokenizer_path), "splits": {}}
    for split in SPLITS:
        paths = list_shards(data_dir, split)
        tokens = docs = counted = unks = 0
        prev: int | None = None
        for p in paths:
            arr = read_shard(p)
            for start in range(0, arr.size, CHUNK):
                chunk = np.asarray(arr[start : start + CHUNK], dtype=np.int64)
                if chunk.size == 0:
                    continue
                if chunk.max() >= tables.size:
                    raise_vocab(p, int(chunk.max()), tables.size)
                inputs = chunk[:-1] if prev is None else np.concatenate(([prev], chunk[:-1]))
                targets = chunk[1:] if prev is None else chunk
                counted += int(target_bytes(tables, inputs, targets).sum())
                tokens += chunk.size
                docs += int((chunk == bos).sum())
                unks += int((chunk == unk).sum())
                prev = int(chunk[-1])
        built = manifest.get("splits", {}).get(split)
        if manifest.get("transform"):
            sidecars = [sidecar_path(p) for p in paths]
            counted = (sum(int(np.asarray(read_shard(q), dtype=np.int64).sum()) for q in sidecars)
                       - (int(read_shard(sidecars[0])[0]) if sidecars else 0)
                       if sidecars and all(q.is_file() for q in sidecars) else (built or {}).get("counted_bytes", 0))
        entry = {"shards": len(paths), "tokens": tokens, "docs": docs, "counted_bytes": counted,
                 "unk_tokens": unks}
        if built:
            entry["utf8_bytes"] = built["utf8_bytes"]
            entry["normalized_bytes"] = built["normalized_bytes"]
            entry["hidden_bytes"] = built["hidden_bytes"]
            total = built["normalized_bytes"]
            entry["hidden_fraction"] = built["hidden_bytes"] / total if total else 0.0
            entry["bytes_per_token"] = counted / max(tokens - 1, 1)
        result["splits"][split] = entry
    result["warnings"] = [
        f"{s}: <unk> pieces hide {e['hidden_bytes']:,} bytes "
        f"({100 * e['hidden_fraction']:.3f}% of the normalized text), which bpb never counts"
        for s, e in result["splits"].items()
        if e.get("hidden_fraction", 0.0) > HIDDEN_WARN_FRACTION
    ]
    return result


def raise_vocab(path, bad: int, vocab: int) -> None:
    from pgolf.errors import DataError

    raise DataError(f"{path}: token id {bad} >= tokenizer vocab {vocab}; wrong tokenizer for these shards")
