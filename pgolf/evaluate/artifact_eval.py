"""`pgolf eval ARTIFACT`: score the round-tripped (quantized, decoded) model."""

from __future__ import annotations

import time
from pathlib import Path

from pgolf.artifact.format import read_artifact
from pgolf.artifact.load import model_from_artifact
from pgolf.config import preset_from_dict
from pgolf.data.tokenizer import file_sha256
from pgolf.evaluate.standard import evaluate_standard
from pgolf.train.distributed import Runtime
from pgolf.train.loop import load_eval_inputs


def evaluate_artifact(path: str | Path, data_dir: str | Path, runtime: Runtime,
                      tokenizer: str | Path | None = None, seq_len: int | None = None,
                      limit: int = 0) -> dict:
    artifact = read_artifact(path)
    preset = preset_from_dict(artifact.preset)
    val, tables, tok_path = load_eval_inputs(data_dir, tokenizer, preset.model.vocab_size, runtime.device)
    warnings = []
    trained_sha = artifact.meta.get("data", {}).get("tokenizer_sha256")
    if trained_sha and trained_sha != file_sha256(tok_path):
        warnings.append(f"{tok_path} differs from the tokenizer the model was trained with")
    model = model_from_artifact(artifact, runtime.device)
    seq_len = seq_len or preset.eval.seq_len
    t0 = time.perf_counter()
    totals = evaluate_standard(model, val, tables, seq_len, preset.eval.batch_tokens, runtime, limit=limit)
    seconds = time.perf_counter() - t0
    return {
        "artifact": str(path),
        "method": "standard",
        "val_loss": totals.loss,
        "val_bpb": totals.bpb,
        "tokens": totals.tokens,
        "bytes": totals.bytes,
        "eval_seconds": seconds,
        "config": {"seq_len": seq_len, "batch_tokens": preset.eval.batch_tokens, "limit": limit,
                   "tokenizer": str(tok_path), "data_dir": str(data_dir), "quant": artifact.quant},
        "warnings": warnings,
    }
