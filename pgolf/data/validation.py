"""The validation inputs every scorer needs (training's validation, `pgolf eval`, the audit): the
val split's tokens and the byte counts of the tokenizer they were built with (its piece tables, or
the per-token sidecar of data built with a text transform)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pgolf.data.bpb import SidecarByteCounts, TorchByteTables
from pgolf.data.build import read_manifest, resolve_tokenizer
from pgolf.data.shards import check_vocab, load_split
from pgolf.data.sidecar import load_sidecar
from pgolf.data.tokenizer import build_byte_tables, load_tokenizer
from pgolf.errors import DataError


def load_eval_inputs(data_dir, tokenizer, vocab_size: int, device) -> tuple[np.ndarray, TorchByteTables, Path]:
    """Validation tokens and byte tables, with the vocab checks the contest script asserts."""
    tok_path = resolve_tokenizer(data_dir, tokenizer)
    sp = load_tokenizer(tok_path)
    if sp.vocab_size() != vocab_size:
        raise DataError(
            f"{tok_path}: tokenizer vocab {sp.vocab_size()} != model vocab {vocab_size}; "
            "use the tokenizer the shards were built with and a preset of the same vocab"
        )
    val = load_split(data_dir, "val")
    check_vocab(val, vocab_size, f"{data_dir} (val split)")
    byte_tables = build_byte_tables(sp, vocab_size)
    if (read_manifest(data_dir) or {}).get("transform"):
        return val, SidecarByteCounts(byte_tables, load_sidecar(data_dir, "val", val.size), device), tok_path
    return val, TorchByteTables(byte_tables, device), tok_path
