"""`pgolf eval ARTIFACT`: score the round-tripped (quantized, decoded) model with the chosen
evaluation methods in one pass (see `pgolf.evaluate.pipeline`)."""

from __future__ import annotations

import time
from pathlib import Path

from pgolf.artifact.format import read_artifact
from pgolf.artifact.load import model_from_artifact
from pgolf.config import override, preset_from_dict
from pgolf.data.tokenizer import file_sha256
from pgolf.evaluate.methods.base import load_methods
from pgolf.evaluate.methods.check import check_evaluation
from pgolf.evaluate.pipeline import run_pipeline
from pgolf.runtime import Runtime, compile_module
from pgolf.data.validation import load_eval_inputs


def resolve_methods(spec: str | list[str] | None, preset) -> list[str]:
    """"standard" by default; "preset" = the preset's own `evaluation.methods`."""
    if spec in (None, "", []):
        return ["standard"]
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    if names == ["preset"]:
        return preset.eval_methods
    return [n.strip() for n in names if n.strip()]


def evaluate_artifact(path: str | Path, data_dir: str | Path, runtime: Runtime,
                      tokenizer: str | Path | None = None, seq_len: int | None = None,
                      limit: int = 0, methods: str | list[str] | None = None,
                      overrides: list[str] | None = None, time_budget: float = 0.0,
                      strict_budget: bool = False, observer=None) -> dict:
    """`observer`: told what the pass scores and adapts (the audit's whole-evaluation recorder,
    `pgolf.audit.stream.evaluate_recorded`)."""
    t0 = time.perf_counter()
    artifact = read_artifact(path)
    preset = preset_from_dict(artifact.preset)
    extra = list(overrides or []) + ([f"eval.seq_len={seq_len}"] if seq_len else [])
    if extra:
        preset = override(preset, extra)
        check_evaluation(preset)
    names = resolve_methods(methods, preset)
    registry = load_methods(names)
    val, tables, tok_path = load_eval_inputs(data_dir, tokenizer, preset.model.vocab_size, runtime.device)
    warnings = []
    trained_sha = artifact.meta.get("data", {}).get("tokenizer_sha256")
    if trained_sha and trained_sha != file_sha256(tok_path):
        warnings.append(f"{tok_path} differs from the tokenizer the model was trained with")
    model = model_from_artifact(artifact, runtime.device)
    load_seconds = time.perf_counter() - t0  # decompression and dequantization, data loading
    if runtime.device.type == "cuda" and all(registry.get(n).role in ("windows", "mix") for n in names):
        model = compile_module(model)  # weight-changing methods run eager (they deep-copy the model)
    if observer is not None and hasattr(observer, "start"):
        observer.start(min(val.size - 1, limit) if limit > 0 else val.size - 1)
    result = run_pipeline(model, val, tables, preset, runtime, names, limit=limit, observer=observer,
                          time_budget=time_budget, strict_budget=strict_budget)
    out = result.as_dict()
    warnings += out.pop("warnings")
    # the records' two eval times: with setup (artifact load + warm-up) and without it
    out["load_seconds"] = load_seconds
    out["eval_seconds_with_setup"] = load_seconds + out["eval_seconds"]
    illegal = [m["method"] for m in out["methods"] if not m["legal_by_design"]]
    if illegal:
        warnings.append(f"not legal under the contest's rules (by design): {', '.join(illegal)}")
    return {
        "artifact": str(path),
        "method": ",".join(names),
        "legal_by_design": not illegal,
        "illegal_methods": illegal,
        **out,
        "config": {"seq_len": preset.eval.seq_len, "limit": limit, "tokenizer": str(tok_path),
                   "data_dir": str(data_dir), "quant": artifact.quant, "overrides": extra},
        "warnings": warnings,
    }
