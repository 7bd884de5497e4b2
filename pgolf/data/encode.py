"""Documents → token arrays (and, for a transform's validation documents, their byte sidecar), in
this process or spread over worker processes.

Tokenizing the contest's 45 GiB of selected documents is hours of Python per document (the
transform, SentencePiece's piece protos, the byte accounting), so `data build --workers N` hands
batches of documents to N processes and writes their results in the order they were read: the
shards are byte-identical for any N. Only validation documents need the per-piece byte walk of a
transform's sidecar; a training document of a lossless transform is charged its UTF-8 bytes, the
same total, without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from pgolf.data.bpb import target_bytes
from pgolf.data.sidecar import charged_bytes
from pgolf.data.tokenizer import Normalizer, build_byte_tables, load_tokenizer
from pgolf.errors import DataError


@dataclass
class EncodedDocument:
    split: str
    tokens: np.ndarray  # uint16, BOS first
    nbytes: np.ndarray | None  # uint16 original bytes per token (a transform's validation documents)
    utf8_bytes: int
    normalized_bytes: int
    counted_bytes: int
    unk_tokens: int


class DocumentEncoder:
    """Everything one process needs to encode documents: the tokenizer, its normalizer and byte
    tables, and the text transform (None: plain text)."""

    def __init__(self, tokenizer: str | os.PathLike, transform: str | None, threads: int) -> None:
        from pgolf.data.transforms import TRANSFORMS

        self.sp = load_tokenizer(tokenizer)
        self.transform = TRANSFORMS.get(transform) if transform else None
        self.tables = build_byte_tables(self.sp)
        self.normalize = Normalizer(Path(tokenizer))
        self.bos, self.unk = self.sp.bos_id(), self.sp.unk_id()
        self.threads = threads

    def encode(self, batch: list[tuple[str, str]]) -> list[EncodedDocument]:
        """`batch`: (split, text) pairs; the results in the same order."""
        texts = [t for _, t in batch]
        encoded = [self.transform.encode(t) for t in texts] if self.transform else texts
        sidecar = [self.transform is not None and split == "val" for split, _ in batch]
        plain = [e for e, s in zip(encoded, sidecar) if not s]
        with_bytes = [e for e, s in zip(encoded, sidecar) if s]
        plain_ids = iter(self.sp.encode(plain, num_threads=self.threads) if plain else [])
        protos = iter(self.sp.encode(with_bytes, return_type="proto", num_threads=self.threads) if with_bytes else [])
        out = []
        for (split, text), enc, wants_bytes in zip(batch, encoded, sidecar):
            raw = len(text.encode("utf-8"))
            nbytes = None
            if wants_bytes:
                pieces, charged, leftover = charged_bytes(self.transform, enc, next(protos))
                nbytes = np.concatenate([[leftover], charged])
                if nbytes.max(initial=0) >= 1 << 16:
                    raise DataError(f"a {split} document charges {int(nbytes.max())} bytes to one token, more than "
                                    "a uint16 sidecar holds (a run of whitespace the tokenizer drops?)")
            else:
                pieces = next(plain_ids)
            doc = np.empty(len(pieces) + 1, dtype=np.int64)
            doc[0] = self.bos
            doc[1:] = pieces
            if nbytes is not None:
                counted = int(nbytes.sum())
            elif self.transform is not None:
                counted = raw  # lossless: every original byte is charged once (what the sidecar sums to)
            else:
                counted = int(target_bytes(self.tables, doc[:-1], doc[1:]).sum())
            out.append(EncodedDocument(split, doc.astype(np.uint16), nbytes.astype(np.uint16) if nbytes is not None
                                       else None, raw, len(self.normalize(text).encode("utf-8")), counted,
                                       int((doc == self.unk).sum())))
        return out


_WORKER: DocumentEncoder | None = None


def _start_worker(tokenizer: str, transform: str | None) -> None:
    global _WORKER
    _WORKER = DocumentEncoder(tokenizer, transform, threads=1)


def _encode_in_worker(batch: list[tuple[str, str]]) -> list[EncodedDocument]:
    assert _WORKER is not None
    return _WORKER.encode(batch)


def encode_batches(batches: Iterable[list[tuple[str, str]]], tokenizer: str | os.PathLike, transform: str | None,
                   workers: int) -> Iterator[list[EncodedDocument]]:
    """Encoded batches in input order. `workers` ≤ 1: in this process, SentencePiece on every
    core; more: that many processes (fork), each single-threaded, at most 2·workers batches ahead."""
    if workers <= 1:
        encoder = DocumentEncoder(tokenizer, transform, threads=os.cpu_count() or 1)
        for batch in batches:
            yield encoder.encode(batch)
        return
    with get_context("fork").Pool(workers, _start_worker, (str(tokenizer), transform)) as pool:
        pending = []
        for batch in batches:
            pending.append(pool.apply_async(_encode_in_worker, (batch,)))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).get()
        for result in pending:
            yield result.get()
