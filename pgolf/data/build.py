"""Build contest-format shards from any text corpus.

Text (JSONL with a `text` field, one document per line; or plain files, one document per file)
→ SentencePiece (a given model, or a BPE model trained here) → each document as `[BOS] + pieces`
with no EOS, as the contest's export does → `fineweb_{val,train}_NNNNNN.bin` + `manifest.json`.

Validation is either the first K documents overall (`val_docs`, the contest's rule: its val set
is the first 50,000 documents) or the last fraction F of each input file's documents
(`val_fraction`, the dev corpus's benchmark split).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from pgolf.data.bpb import target_bytes
from pgolf.data.shards import SPLITS, shard_name, write_shard
from pgolf.data.tokenizer import (
    Normalizer,
    build_byte_tables,
    file_sha256,
    load_tokenizer,
    train_tokenizer,
)
from pgolf.errors import DataError

MANIFEST_NAME = "manifest.json"
TOKENIZER_NAME = "tokenizer.model"
DEFAULT_SHARD_TOKENS = 100_000_000  # the contest's shard size
ENCODE_BATCH_DOCS = 256


def input_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand directories to their .jsonl/.txt files (sorted); keep explicit files as given."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix in (".jsonl", ".txt") and q.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: input not found")
    if not files:
        raise DataError("no input text files (.jsonl or .txt) found")
    return files


def read_documents(path: Path) -> Iterator[str]:
    """Documents of one file: JSONL lines' `text` field, or the whole file for plain text."""
    if path.suffix != ".jsonl":
        yield path.read_text(encoding="utf-8")
        return
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise DataError(f"{path}:{lineno}: record has no string field 'text'")
            yield text


def count_documents(path: Path) -> int:
    if path.suffix != ".jsonl":
        return 1
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


@dataclass
class SplitStats:
    docs: int = 0
    tokens: int = 0
    utf8_bytes: int = 0  # raw document bytes
    normalized_bytes: int = 0  # bytes after the tokenizer's normalization
    counted_bytes: int = 0  # bytes the contest's bpb credits
    unk_tokens: int = 0
    shards: list[str] = field(default_factory=list)

    @property
    def hidden_bytes(self) -> int:
        """Normalized bytes the bpb never credits: inside <unk> pieces, or a space after one."""
        return self.normalized_bytes - self.counted_bytes

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["hidden_bytes"] = self.hidden_bytes
        return d


class ShardWriter:
    """Accumulates a token stream and writes it as fixed-size shards of one split."""

    def __init__(self, out_dir: Path, split: str, shard_tokens: int, stats: SplitStats) -> None:
        self.out_dir, self.split, self.shard_tokens, self.stats = out_dir, split, shard_tokens, stats
        self.buffer: list[np.ndarray] = []
        self.buffered = 0

    def add(self, tokens: np.ndarray) -> None:
        self.buffer.append(tokens)
        self.buffered += tokens.size
        while self.buffered >= self.shard_tokens:
            stream = np.concatenate(self.buffer)
            self._write(stream[: self.shard_tokens])
            rest = stream[self.shard_tokens :]
            self.buffer, self.buffered = [rest], rest.size

    def close(self) -> None:
        if self.buffered:
            self._write(np.concatenate(self.buffer))
        self.buffer, self.buffered = [], 0

    def _write(self, tokens: np.ndarray) -> None:
        name = shard_name(self.split, len(self.stats.shards))
        write_shard(self.out_dir / name, tokens)
        self.stats.shards.append(name)


def build_shards(
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    vocab_size: int = 1024,
    byte_fallback: bool = True,
    val_docs: int | None = None,
    val_fraction: float | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    progress: bool | None = None,
) -> dict:
    """Tokenize `inputs` into train/val shards under `out_dir`; return the manifest."""
    if (val_docs is None) == (val_fraction is None):
        raise DataError("give exactly one of val_docs (first K documents) or val_fraction")
    if val_fraction is not None and not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if val_docs is not None and val_docs < 1:
        raise DataError(f"val_docs must be >= 1, got {val_docs}")
    files = input_files(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in list(out_dir.glob("fineweb_*.bin")):  # never mix shards of two builds
        old.unlink()

    tok_path = out_dir / TOKENIZER_NAME
    if tokenizer is not None:
        sp = load_tokenizer(tokenizer)
        if Path(tokenizer).resolve() != tok_path.resolve():
            shutil.copyfile(tokenizer, tok_path)
        trained = False
    else:
        texts = (doc for f in files for doc in read_documents(f))
        sp = train_tokenizer(texts, out_dir / "tokenizer", vocab_size, byte_fallback=byte_fallback)
        trained = True
    tables = build_byte_tables(sp)
    normalize = Normalizer(tok_path)
    bos = sp.bos_id()
    if bos < 0:
        raise DataError(f"{tok_path}: tokenizer has no BOS piece; the contest format needs one")
    unk = sp.unk_id()

    counts = [count_documents(f) for f in files]
    stats = {s: SplitStats() for s in SPLITS}
    writers = {s: ShardWriter(out_dir, s, shard_tokens, stats[s]) for s in SPLITS}
    bar = tqdm(total=sum(counts), unit="doc", desc="tokenize", disable=not _want_progress(progress))
    seen = 0

    def flush(batch: list[tuple[str, str]]) -> None:
        ids = sp.encode([t for _, t in batch], num_threads=os.cpu_count() or 1)
        normalized = [normalize(t) for _, t in batch]
        for (split, text), pieces, norm in zip(batch, ids, normalized):
            doc = np.empty(len(pieces) + 1, dtype=np.int64)
            doc[0] = bos
            doc[1:] = pieces
            st = stats[split]
            st.docs += 1
            st.tokens += doc.size
            st.utf8_bytes += len(text.encode("utf-8"))
            st.normalized_bytes += len(norm.encode("utf-8"))
            st.counted_bytes += int(target_bytes(tables, doc[:-1], doc[1:]).sum())
            st.unk_tokens += int((doc == unk).sum())
            writers[split].add(doc.astype(np.uint16))
        bar.update(len(batch))

    batch: list[tuple[str, str]] = []
    for f, n_docs in zip(files, counts):
        n_val_here = int(round(n_docs * val_fraction)) if val_fraction is not None else 0
        for i, text in enumerate(read_documents(f)):
            if val_fraction is not None:
                split = "val" if i >= n_docs - n_val_here else "train"
            else:
                split = "val" if seen < val_docs else "train"
            seen += 1
            batch.append((split, text))
            if len(batch) >= ENCODE_BATCH_DOCS:
                flush(batch)
                batch = []
    if batch:
        flush(batch)
    bar.close()
    for w in writers.values():
        w.close()
    for split in SPLITS:
        if stats[split].docs == 0:
            raise DataError(
                f"the {split} split is empty ({seen} documents in all); "
                "adjust --val-docs / --val-fraction or give more text"
            )

    manifest = {
        "format": "pgolf-data/1",
        "tokenizer": {
            "file": TOKENIZER_NAME,
            "source": str(tokenizer) if tokenizer is not None else "trained",
            "sha256": file_sha256(tok_path),
            "vocab_size": sp.vocab_size(),
            "trained_here": trained,
        },
        "inputs": [{"path": str(f), "docs": n} for f, n in zip(files, counts)],
        "split_rule": {"val_docs": val_docs} if val_docs is not None else {"val_fraction": val_fraction},
        "bos_id": bos,
        "splits": {s: stats[s].to_dict() for s in SPLITS},
    }
    tmp = out_dir / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST_NAME)
    return manifest


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    import sys

    return sys.stderr.isatty()


def read_manifest(data_dir: str | os.PathLike) -> dict | None:
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg})") from None


def resolve_tokenizer(data_dir: str | os.PathLike, tokenizer: str | os.PathLike | None) -> Path:
    """The tokenizer to use for a data directory: the explicit one, else the one built beside it."""
    if not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: data directory not found (build one with pgolf data build, or fetch it)")
    if tokenizer is not None:
        return Path(tokenizer)
    candidate = Path(data_dir) / TOKENIZER_NAME
    if candidate.is_file():
        return candidate
    raise DataError(
        f"{data_dir}: no {TOKENIZER_NAME} in the data directory; pass --tokenizer PATH.model"
    )
