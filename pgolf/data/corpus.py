"""The embedded default corpus: the documentation text that ships with every CPython.

`pydoc_data.topics` holds the language reference's topics (~465 K characters). Each topic is
split into paragraph groups of about `target_chars` so the default run has enough documents for
a validation split, with no network and no external files.
"""

from __future__ import annotations

import json
from pathlib import Path


def pydoc_documents(target_chars: int = 4000) -> list[str]:
    from pydoc_data.topics import topics

    docs: list[str] = []
    for name in sorted(topics):
        current: list[str] = []
        size = 0
        for para in topics[name].split("\n\n"):
            current.append(para)
            size += len(para)
            if size >= target_chars:
                docs.append("\n\n".join(current))
                current, size = [], 0
        if current and "".join(current).strip():
            docs.append("\n\n".join(current))
    return docs


def write_pydoc_corpus(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for doc in pydoc_documents():
            f.write(json.dumps({"text": doc}) + "\n")
    return path


DEFAULT_VAL_FRACTION = 0.1


def build_default_shards(work: str | Path, vocab_size: int, progress: bool | None = None) -> Path:
    """Shards of the embedded corpus (a tokenizer of `vocab_size` trained on it) under `work/data`."""
    from pgolf.data.build import build_shards

    work = Path(work)
    corpus = write_pydoc_corpus(work / "corpus" / "pydoc_topics.jsonl")
    data = work / "data"
    build_shards([corpus], data, vocab_size=vocab_size, val_fraction=DEFAULT_VAL_FRACTION, progress=progress)
    return data
