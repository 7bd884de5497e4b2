"""`pgolf run`: the whole pipeline in one command — data → train → pack → eval.

With no `--data` it needs no network and no files: it builds a corpus from the documentation
text that ships with CPython, trains a tokenizer of the preset's vocab on it, and uses the last
10% of documents as validation.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from pgolf.artifact.pack import pack_run
from pgolf.config import Preset
from pgolf.data.build import resolve_tokenizer
from pgolf.data.corpus import DEFAULT_VAL_FRACTION, build_default_shards
from pgolf.evaluate.artifact_eval import evaluate_artifact
from pgolf.train.checkpoint import write_json
from pgolf.train.distributed import init_runtime, share_from_main
from pgolf.train.loop import train


def run_main_job(preset: Preset, data: Path | None = None, tokenizer: str | None = None,
                 out: Path | None = None, device: str = "auto", progress: bool | None = None,
                 limit_val_tokens: int = 0) -> dict:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pgolf-run-") as tmp:
        work = Path(out) if out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if data is None:
            data = build_default_shards(work, preset.model.vocab_size, progress)
            split = f"pydoc_data.topics, val = last {DEFAULT_VAL_FRACTION:.0%} of documents"
        else:
            split = "given shards (fineweb_val_* = validation)"
        tok = resolve_tokenizer(data, tokenizer)
        run_dir = work / "run"
        runtime = init_runtime(device)
        summary = train(preset, data, run_dir, runtime, tokenizer=tok, progress=progress)
        # Under torchrun: rank 0 writes the checkpoint and packs; every rank then scores its share.
        packed = pack_run(run_dir, allow_over_budget=True) if runtime.is_main else None
        packed = share_from_main(packed, runtime)
        evaluated = evaluate_artifact(packed["artifact"], data, runtime, tokenizer=tok, limit=limit_val_tokens)
        summary["tokens_per_second"] = summary["tokens_seen"] / max(summary["train_time_ms"] / 1000, 1e-9)
        result = {
            "preset": preset.name,
            "seed": preset.train.seed,
            "data": {"dir": str(data), "tokenizer": str(tok), "split": split},
            "train": summary,
            "pack": packed,
            "eval": evaluated,
            "total_seconds": time.perf_counter() - t0,
            "run_dir": str(run_dir) if out else None,
        }
        if out and runtime.is_main:
            write_json(run_dir / "results.json", json.loads(json.dumps(result, default=str)))
    return result
