"""`pgolf audit ARTIFACT`: run the checks on the round-tripped model and record the verdict next to
the artifact (`ARTIFACT.audit.json`, one entry per method list) so `pgolf eval` can show it."""

from __future__ import annotations

import json
from pathlib import Path

from pgolf.artifact.format import read_artifact
from pgolf.artifact.load import model_from_artifact
from pgolf.audit.checks import audit_pipeline
from pgolf.config import preset_from_dict, with_overrides
from pgolf.evaluate.artifact_eval import resolve_methods
from pgolf.train.checkpoint import write_json
from pgolf.train.distributed import Runtime
from pgolf.train.loop import load_eval_inputs


def audit_path(artifact: str | Path) -> Path:
    return Path(str(artifact) + ".audit.json")


def audit_artifact(path, data_dir, runtime: Runtime, methods, overrides=None, tokenizer=None,
                   limit: int = 8192, cuts: int = 2) -> dict:
    artifact = read_artifact(path)
    preset = preset_from_dict(artifact.preset)
    if overrides:
        preset = with_overrides(preset, overrides)
    names = resolve_methods(methods, preset)
    val, tables, _ = load_eval_inputs(data_dir, tokenizer, preset.model.vocab_size, runtime.device)
    tokens = val[: limit + 1] if limit > 0 else val
    model = model_from_artifact(artifact, runtime.device)
    result = audit_pipeline(model, tokens, tables, preset, runtime, names, cuts=cuts, meta=artifact.meta)
    result["artifact"] = str(path)
    record = audit_path(path)
    previous = json.loads(record.read_text()) if record.is_file() else {}
    previous[",".join(names)] = {"verdict": result["verdict"], "flagged": result["flagged"], "tokens": result["tokens"]}
    write_json(record, previous)
    return result


def recorded_verdict(artifact: str | Path, methods: list[str]) -> dict | None:
    record = audit_path(artifact)
    if not record.is_file():
        return None
    return json.loads(record.read_text()).get(",".join(methods))
