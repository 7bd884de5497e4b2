"""The embedded default corpus: text that ships with every CPython, so `pgolf run` needs no network
and no data files.

Two sources, both read from the running interpreter's own installation:
- `pydoc_data.topics`: the language reference's topics (~0.47 M characters of English prose);
- the standard library's Python sources (~8.5 M characters on CPython 3.11; test suites,
  IDLE, tkinter demos, lib2to3, ensurepip and codec tables left out).
Each source file or topic is cut into documents of about `target_chars` at line breaks, and the
documents are shuffled with a fixed seed, so the validation split (the last 10% of documents) is a
random sample of the whole rather than the alphabetically last modules.

Sized so that the default run (cpu-mini, 3 minutes on a 2-core CPU, 1.3–1.7 M tokens) sees no
training token twice: 2.84 M training and 0.32 M validation tokens under its own 1,024-piece
tokenizer (CPython 3.11). The 157 pydoc topics alone made the same run memorize its training text
about seven times over (train loss 0.45 against val loss 5.05; now 3.73 against 3.61).
"""

from __future__ import annotations

import json
import random
import sysconfig
from pathlib import Path

DEFAULT_VAL_FRACTION = 0.1
# Parts of the standard library left out: test suites (generated and repetitive), GUI demos,
# vendored or table-like code.
SKIPPED_DIRS = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3", "tkinter",
                          "turtledemo", "__pycache__", "ensurepip", "pydoc_data", "encodings"})
SHUFFLE_SEED = 1024


def split_text(text: str, target_chars: int) -> list[str]:
    """`text` cut at line breaks into pieces of about `target_chars` (none empty)."""
    pieces, current, size = [], [], 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        size += len(line)
        if size >= target_chars:
            pieces.append("".join(current))
            current, size = [], 0
    if "".join(current).strip():
        pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def pydoc_documents(target_chars: int = 4000) -> list[str]:
    """Each topic in groups of paragraphs of about `target_chars` (the tests' tiny corpus is built
    from these: changing the grouping changes every golden number)."""
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


def stdlib_sources() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return [p for p in sorted(root.rglob("*.py"))
            if not set(p.relative_to(root).parts[:-1]) & SKIPPED_DIRS and p.is_file()]


def stdlib_documents(target_chars: int = 8000) -> list[str]:
    docs = []
    for path in stdlib_sources():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a file this interpreter cannot read as UTF-8 is simply not part of the corpus
        docs += split_text(text, target_chars)
    return docs


def default_documents(max_chars: int = 0) -> list[str]:
    """The default corpus's documents, shuffled with a fixed seed; `max_chars` > 0 keeps only
    that many characters' worth of them (for tests and the planner, which need less)."""
    docs = pydoc_documents() + stdlib_documents()
    random.Random(SHUFFLE_SEED).shuffle(docs)
    if max_chars > 0:
        kept, total = [], 0
        for doc in docs:
            if total >= max_chars:
                break
            kept.append(doc)
            total += len(doc)
        docs = kept
    return docs


def write_documents(path: str | Path, docs: list[str]) -> Path:
    """`docs` as JSONL with a "text" field, the input `pgolf data build` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps({"text": doc}) + "\n")
    return path


def write_default_corpus(path: str | Path, max_chars: int = 0) -> Path:
    return write_documents(path, default_documents(max_chars))


def write_pydoc_corpus(path: str | Path) -> Path:
    """The pydoc topics alone (~0.15 M tokens): a small, fast corpus for throughput benchmarks."""
    return write_documents(path, pydoc_documents())


def describe_default_corpus() -> str:
    return (f"CPython's pydoc topics + standard-library sources, shuffled; val = last "
            f"{DEFAULT_VAL_FRACTION:.0%} of documents")


def build_default_shards(work: str | Path, vocab_size: int, progress: bool | None = None,
                         max_chars: int = 0) -> Path:
    """Shards of the embedded corpus (a tokenizer of `vocab_size` trained on it) under `work/data`."""
    from pgolf.data.build import build_shards

    work = Path(work)
    corpus = write_default_corpus(work / "corpus" / "cpython_text.jsonl", max_chars)
    data = work / "data"
    build_shards([corpus], data, vocab_size=vocab_size, val_fraction=DEFAULT_VAL_FRACTION, progress=progress)
    return data
