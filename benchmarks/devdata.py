"""Where the benchmarks find the dev corpus: a directory holding `corpus/` (JSONL or text files)
and `tokenizers/fineweb_1024_bpe.model` (the contest's SP-1024), named by `--dev-data` or the
environment variable PGOLF_DEV_DATA. The benchmarks never assume where it lives."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "PGOLF_DEV_DATA"


def dev_data_dir(given: Path | None = None) -> Path:
    root = given or (Path(os.environ[ENV]) if os.environ.get(ENV) else None)
    if root is None or not (root / "corpus").is_dir():
        sys.exit(f"dev corpus not found: pass --dev-data DIR or set {ENV}=DIR (DIR/corpus holds the text, "
                 "DIR/tokenizers/fineweb_1024_bpe.model the contest tokenizer), or pass --data with built shards")
    return root


def dev_tokenizer(given: Path | None = None) -> Path:
    return dev_data_dir(given) / "tokenizers" / "fineweb_1024_bpe.model"
