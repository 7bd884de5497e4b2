"""The per-token byte sidecar: for every token of a split, how many bytes of the *original*
document text it stands for, so bits per byte are charged on the text before any transform.

A text transform (CaseOps) adds operator characters and the tokenizer normalises its input, so the
contest's per-piece byte table no longer counts original bytes. Instead each piece is charged the
original bytes of the input span SentencePiece reports for it (`begin`/`end` offsets into the
transformed text), counting only the bytes the transform marks as original. Bytes no piece covers
(whitespace the normaliser strips at a document's edges) go to the next piece, or to the last one
at the end, so a document's charges sum to its UTF-8 length exactly; BOS is charged 0, unless the
document has no pieces at all, when its bytes (whitespace only) go to its BOS.

The sidecar is stored like a token shard (same header, uint16 per token), one file per shard:
`fineweb_val_bytes_NNNNNN.bin` beside `fineweb_val_NNNNNN.bin`.
"""

from __future__ import annotations

import os
import numpy as np

from pgolf.data.shards import list_shards, read_header, read_shard, sidecar_path
from pgolf.data.transforms import TextTransform
from pgolf.errors import DataError


def charged_bytes(transform: TextTransform, encoded: str, proto) -> tuple[np.ndarray, np.ndarray, int]:
    """Token ids and the original bytes each one stands for, from SentencePiece's `proto` of
    `encoded` (= transform.encode(original)); plus the bytes left over when there is no piece."""
    raw = encoded.encode("utf-8")
    cum = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(transform.original_bytes(raw), out=cum[1:])
    pieces = proto.pieces
    ids = np.fromiter((p.id for p in pieces), dtype=np.int64, count=len(pieces))
    if not len(pieces):
        return ids, ids.copy(), int(cum[-1])
    ends = np.maximum.accumulate(np.fromiter((p.end for p in pieces), dtype=np.int64, count=len(pieces)))
    ends[-1] = len(raw)
    starts = np.concatenate([[0], ends[:-1]])
    return ids, cum[ends] - cum[starts], 0


def load_sidecar(directory: str | os.PathLike, split: str, expected_tokens: int) -> np.ndarray:
    """The split's sidecar concatenated (int64), checked against the token shards it belongs to."""
    shards = list_shards(directory, split)
    parts = []
    for shard in shards:
        side = sidecar_path(shard)
        if not side.is_file():
            raise DataError(f"{shard}: no byte sidecar {side.name} beside it; the data was built with a text "
                            "transform, so bits per byte need it (rebuild with pgolf data build)")
        part = np.asarray(read_shard(side), dtype=np.int64)
        n = read_header(shard)  # the token count, without reading the tokens
        if part.size != n:
            raise DataError(f"{side}: {part.size} byte counts for {n} tokens")
        parts.append(part)
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if out.size != expected_tokens:
        raise DataError(f"{directory}: the {split} sidecar has {out.size} entries for {expected_tokens} tokens")
    return out

