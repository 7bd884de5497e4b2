"""Build contest-format shards from any text corpus.

Text (JSONL with a `text` field, one document per line; or plain files, one document per file)
→ SentencePiece (a given model, or a BPE model trained here) → each document as `[BOS] + pieces`
with no EOS, as the contest's export does → `fineweb_{val,train}_NNNNNN.bin` + `manifest.json`.

With a text transform (`transform="caseops"`), each document is transformed before tokenization
and every validation shard gets a byte sidecar (data/sidecar.py) holding the original bytes each
token stands for; bits per byte are then charged from it, not from the piece table.

Documents are encoded in `workers` processes (data/encode.py) and written in input order.

Validation is either the first K documents overall (`val_docs`, the contest's rule: its val set
is the first 50,000 documents) or the last fraction F of each input file's documents
(`val_fraction`, the dev corpus's benchmark split).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from pgolf.data.encode import encode_batches
from pgolf.data.overlap import MIN_SHARE, SAMPLE, WINDOW, Fingerprints, OverlapScanner
from pgolf.data.shards import SPLITS, shard_name, sidecar_path, write_shard
from pgolf.data.tokenizer import file_sha256, load_tokenizer, train_tokenizer
from pgolf.errors import DataError
from pgolf.io import atomic_write_bytes, ensure_writable, write_json

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
    counted_bytes: int = 0  # bytes the bpb credits (the piece table's, or the sidecar's)
    unk_tokens: int = 0
    shards: list[str] = field(default_factory=list)

    sidecar: bool = False  # counted from the original bytes (a text transform's sidecar)

    @property
    def hidden_bytes(self) -> int:
        """Normalized bytes the bpb never credits: inside <unk> pieces, or a space after one.
        A sidecar charges every original byte, so nothing is hidden."""
        return 0 if self.sidecar else self.normalized_bytes - self.counted_bytes

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["hidden_bytes"] = self.hidden_bytes
        return d


class ShardWriter:
    """Accumulates a token stream (and, with `sidecar`, the parallel byte counts) and writes it as
    fixed-size shards of one split."""

    def __init__(self, out_dir: Path, split: str, shard_tokens: int, stats: SplitStats,
                 sidecar: bool = False) -> None:
        self.out_dir, self.split, self.shard_tokens, self.stats = out_dir, split, shard_tokens, stats
        self.sidecar = sidecar
        self.buffer: list[np.ndarray] = []
        self.bytes: list[np.ndarray] = []
        self.buffered = 0

    def add(self, tokens: np.ndarray, nbytes: np.ndarray | None = None) -> None:
        self.buffer.append(tokens)
        if self.sidecar:
            self.bytes.append(nbytes)
        self.buffered += tokens.size
        while self.buffered >= self.shard_tokens:
            stream = np.concatenate(self.buffer)
            counts = np.concatenate(self.bytes) if self.sidecar else None
            self._write(stream[: self.shard_tokens], counts[: self.shard_tokens] if self.sidecar else None)
            rest = stream[self.shard_tokens :]
            self.buffer, self.buffered = [rest], rest.size
            self.bytes = [counts[self.shard_tokens :]] if self.sidecar else []

    def close(self) -> None:
        if self.buffered:
            self._write(np.concatenate(self.buffer), np.concatenate(self.bytes) if self.sidecar else None)
        self.buffer, self.bytes, self.buffered = [], [], 0

    def _write(self, tokens: np.ndarray, counts: np.ndarray | None) -> None:
        name = shard_name(self.split, len(self.stats.shards))
        write_shard(self.out_dir / name, tokens)
        if counts is not None:
            write_shard(sidecar_path(self.out_dir / name), counts)
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
    transform: str | None = None,
    workers: int = 1,
    max_train_docs: int | None = None,
    keep_overlap: bool = False,
) -> dict:
    """Tokenize `inputs` into train/val shards under `out_dir`; return the manifest. `workers` > 1
    encodes in that many processes (same shards); `max_train_docs` stops after that many training
    documents (the contest's documents hold far more tokens than a 10-minute run reads).

    Validation documents are encoded first and fingerprinted (pgolf.data.overlap); a training
    document that holds (most of) a validation document, or is one, is not written, and the
    manifest says how many were left out (`keep_overlap` writes them, and says so too)."""
    from pgolf.data.transforms import TRANSFORMS

    text_transform = TRANSFORMS.get(transform) if transform else None
    if (val_docs is None) == (val_fraction is None):
        raise DataError("give exactly one of val_docs (first K documents) or val_fraction")
    if val_fraction is not None and not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if val_docs is not None and val_docs < 1:
        raise DataError(f"val_docs must be >= 1, got {val_docs}")
    if max_train_docs is not None and (max_train_docs < 1 or val_docs is None):
        raise DataError("max_train_docs must be >= 1 and needs val_docs (validation first, then training)"
                        if val_docs is None else f"max_train_docs must be >= 1, got {max_train_docs}")
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}")
    files = input_files(inputs)
    out_dir = ensure_writable(Path(out_dir))
    for old in list(out_dir.glob("fineweb_*.bin")):  # never mix shards (or sidecars) of two builds
        old.unlink()

    tok_path = out_dir / TOKENIZER_NAME
    if tokenizer is not None:
        sp = load_tokenizer(tokenizer)
        if Path(tokenizer).resolve() != tok_path.resolve():
            atomic_write_bytes(tok_path, Path(tokenizer).read_bytes())
        trained = False
    else:
        texts = (doc for f in files for doc in read_documents(f))
        if text_transform is not None:
            texts = map(text_transform.encode, texts)
        sp = train_tokenizer(texts, out_dir / "tokenizer", vocab_size, byte_fallback=byte_fallback,
                             reserved=text_transform.reserved if text_transform else ())
        trained = True
    if text_transform is not None:
        check_reserved_pieces(sp, text_transform, tok_path)
    if sp.bos_id() < 0:
        raise DataError(f"{tok_path}: tokenizer has no BOS piece; the contest format needs one")

    # only the per-file split needs the counts up front; counting 45 GiB of JSONL takes minutes
    counts = [count_documents(f) for f in files] if val_fraction is not None else None
    used = [0] * len(files)  # documents read from each file
    stats = {s: SplitStats() for s in SPLITS}
    for split in SPLITS:
        stats[split].sidecar = text_transform is not None
    # only validation is scored, so only validation carries a sidecar
    writers = {s: ShardWriter(out_dir, s, shard_tokens, stats[s], sidecar=text_transform is not None and s == "val")
               for s in SPLITS}
    total = sum(counts) if counts else (val_docs + max_train_docs if max_train_docs is not None else None)
    bar = tqdm(total=total, unit="doc", desc="tokenize", disable=not _want_progress(progress))
    seen = 0

    def labelled() -> Iterator[tuple[str, int, int, str]]:
        """(split, file, index in the file, text) of every document, in file order."""
        n = 0
        for k, f in enumerate(files):
            n_val_here = int(round(counts[k] * val_fraction)) if counts else 0
            for i, text in enumerate(read_documents(f)):
                if counts:
                    yield ("val" if i >= counts[k] - n_val_here else "train"), k, i, text
                else:
                    yield ("val" if n < val_docs else "train"), k, i, text
                n += 1

    def documents() -> Iterator[tuple[str, str]]:
        """Every validation document first, then the training ones (each split in file order, so
        the shards are what a file-by-file pass writes), so that training documents can be checked
        against validation before they are written."""
        nonlocal seen
        train = 0
        for wanted in ("val", "train"):
            for split, k, i, text in labelled():
                if split != wanted:
                    if wanted == "val" and not counts:
                        break  # the first K documents are validation: all of them are read
                    continue
                if split == "train":
                    if max_train_docs is not None and train >= max_train_docs:
                        return
                    train += 1
                seen += 1
                used[k] = max(used[k], i + 1)
                yield split, text

    def batches() -> Iterator[list[tuple[str, str]]]:
        batch: list[tuple[str, str]] = []
        for doc in documents():
            batch.append(doc)
            if len(batch) >= ENCODE_BATCH_DOCS:
                yield batch
                batch = []
        if batch:
            yield batch

    scanner, dropped = None, {"docs": 0, "tokens": 0, "utf8_bytes": 0}
    val_docs_seen: list[tuple[int, np.ndarray]] = []
    for encoded in encode_batches(batches(), tok_path, transform, workers):
        for d in encoded:
            if d.split == "val":
                val_docs_seen.append((stats["val"].tokens, d.tokens))
            elif scanner is None:  # the first training document: every validation one is in
                scanner = OverlapScanner(Fingerprints.of(val_docs_seen), bos_id=sp.bos_id())
            if d.split == "train" and not scanner.admit(d.tokens):
                dropped["docs"] += 1
                dropped["tokens"] += d.tokens.size
                dropped["utf8_bytes"] += d.utf8_bytes
                if not keep_overlap:
                    continue
            st = stats[d.split]
            st.docs += 1
            st.tokens += d.tokens.size
            st.utf8_bytes += d.utf8_bytes
            st.normalized_bytes += d.normalized_bytes
            st.counted_bytes += d.counted_bytes
            st.unk_tokens += d.unk_tokens
            writers[d.split].add(d.tokens, d.nbytes)
        bar.update(len(encoded))
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
        "inputs": [{"path": str(f), "docs": n} for f, n in zip(files, used)],
        "split_rule": ({"val_docs": val_docs} if val_docs is not None else {"val_fraction": val_fraction})
        | ({"max_train_docs": max_train_docs} if max_train_docs is not None else {}),
        "bos_id": sp.bos_id(),
        "transform": transform or None,
        "splits": {s: stats[s].to_dict() for s in SPLITS},
        # training documents that would have put validation text into training (pgolf.data.overlap)
        "overlap": {"train_docs_matching_val": dropped["docs"], "tokens": dropped["tokens"],
                    "utf8_bytes": dropped["utf8_bytes"],
                    "written": keep_overlap, "window": WINDOW, "sample": SAMPLE, "min_share": MIN_SHARE},
    }
    write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest


def check_reserved_pieces(sp, transform, tok_path) -> None:
    """A transform's operator characters must each be one piece of the tokenizer, or they would
    split into byte pieces (or <unk>) and the model could not learn them as operators."""
    for ch in transform.reserved:
        ids = sp.encode(ch)
        if len(ids) != 1 or ids[0] == sp.unk_id():
            raise DataError(
                f"{tok_path}: the {transform.name} transform needs U+{ord(ch):04X} as one piece of the tokenizer; "
                "use a tokenizer trained with it (e.g. fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model) "
                "or let data build train one (--vocab-size)")


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
