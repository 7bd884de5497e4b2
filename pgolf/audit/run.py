"""`pgolf audit ARTIFACT`: run the window checks and the whole-evaluation record on the
round-tripped model and keep the verdict next to the artifact (`ARTIFACT.audit.json`, one entry
per method list) so `pgolf eval` and `pgolf submit` can show it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pgolf.artifact.format import read_artifact
from pgolf.artifact.load import model_from_artifact
from pgolf.audit.checks import audit_pipeline, byte_accounting
from pgolf.audit.stream import stream_recorder, stream_verdict
from pgolf.config import override, preset_from_dict
from pgolf.evaluate.artifact_eval import resolve_methods
from pgolf.evaluate.methods.check import check_evaluation
from pgolf.evaluate.pipeline import run_pipeline
from pgolf.io import write_json
from pgolf.runtime import Runtime
from pgolf.data.build import read_manifest
from pgolf.data.validation import load_eval_inputs
from pgolf.rundir import audit_record


def audit_artifact(path, data_dir, runtime: Runtime, methods, overrides=None, tokenizer=None,
                   limit: int | None = None, cuts: int = 3, probe_positions: int = 2,
                   stream: dict | None = None, stream_tokens: int = 0) -> dict:
    """The window checks on `limit` targets (None: the smallest window that sees every method
    adapt), plus the whole-evaluation record: `stream` when the caller already scored the stream
    with a recorder (pgolf run), else a scoring pass over `stream_tokens` (0 = all; < 0 = none)."""
    artifact = read_artifact(path)
    preset = preset_from_dict(artifact.preset)
    if overrides:
        preset = override(preset, overrides)
        check_evaluation(preset)
    names = resolve_methods(methods, preset)
    val, tables, _ = load_eval_inputs(data_dir, tokenizer, preset.model.vocab_size, runtime.device)
    model = model_from_artifact(artifact, runtime.device)
    bytes_record = byte_accounting(tables, read_manifest(data_dir), val.size)
    result = audit_pipeline(model, val, tables, preset, runtime, names, cuts=cuts, meta=artifact.meta,
                            window=limit or None, probe_positions=probe_positions, byte_record=bytes_record)
    if stream is None and stream_tokens >= 0:
        rec = stream_recorder(min(val.size - 1, stream_tokens) if stream_tokens > 0 else val.size - 1)
        t0 = time.perf_counter()
        run_pipeline(model, val, tables, preset, runtime, names, observer=rec, limit=stream_tokens)
        stream = {**stream_verdict(rec, runtime), "seconds": time.perf_counter() - t0}
    if stream is not None:
        result["stream"] = stream
        for name in stream["flagged"]:
            label = f"{name} (whole evaluation)"
            result["flagged"].append(label)
        result["verdict"] = "flagged" if result["flagged"] else "pass"
    result["artifact"] = str(path)
    record = audit_record(path)
    previous = json.loads(record.read_text()) if record.is_file() else {}
    previous[",".join(names)] = {"verdict": result["verdict"], "flagged": result["flagged"], "tokens": result["tokens"],
                                 "stream_targets": stream["targets"] if stream else 0}
    write_json(record, previous)
    return result


def recorded_verdict(artifact: str | Path, methods: list[str]) -> dict | None:
    record = audit_record(artifact)
    if not record.is_file():
        return None
    return json.loads(record.read_text()).get(",".join(methods))
