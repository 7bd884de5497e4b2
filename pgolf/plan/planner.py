"""`pgolf plan`: measure (or read a benchmark's figures) and project a preset onto a target."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from pgolf.config import Preset
from pgolf.data.bpb import TorchByteTables
from pgolf.data.build import resolve_tokenizer
from pgolf.data.corpus import build_default_shards
from pgolf.data.tokenizer import build_byte_tables, load_tokenizer
from pgolf.errors import ConfigError
from pgolf.evaluate.methods.base import load_methods
from pgolf.plan.hardware import Target
from pgolf.plan.measure import measure_eval, measure_training
from pgolf.plan.project import FINEWEB_VAL_TOKENS, Plan, project
from pgolf.runtime import Runtime, device_name

# The planner times steps, not learning: a small slice of the default corpus is enough.
PLANNER_CORPUS_CHARS = 1_000_000


def preset_pipeline(preset: Preset) -> list[str]:
    return list(preset.evaluation.get("methods") or ["standard"])


def runnable(methods: list[str]) -> bool:
    registry = load_methods()  # all of them, to know which exist
    return all(m in registry for m in methods)


def eval_variants(preset: Preset) -> list[list[str]]:
    """What to time: each single method the preset uses, then its whole pipeline."""
    pipeline = preset_pipeline(preset)
    variants = [["standard"], ["sliding"]] + [[m] for m in pipeline if m not in ("standard", "sliding")]
    if len(pipeline) > 1:
        variants.append(pipeline)
    return [v for v in variants if runnable(v)]


def measure_preset(preset: Preset, gpus: int, data: Path, runtime: Runtime, steps: int, eval_tokens: int) -> dict:
    import torch._dynamo

    torch._dynamo.reset()  # compiled entries of an earlier preset must not count against this one
    train = measure_training(preset, gpus, data, runtime, steps=steps)
    sp = load_tokenizer(resolve_tokenizer(data, None))
    tables = TorchByteTables(build_byte_tables(sp, preset.model.vocab_size), runtime.device)
    evals = {}
    for variant in eval_variants(preset):
        evals[",".join(variant)] = measure_eval(preset, runtime, variant, eval_tokens, tables)
    return {"train": train, "eval": evals}


def bench_row(bench_file: Path, preset: Preset) -> dict:
    try:
        bench = json.loads(Path(bench_file).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{bench_file}: cannot read the benchmark file ({exc})") from None
    rows = bench.get("rows", {})
    if preset.name not in rows:
        raise ConfigError(f"{bench_file}: no row for preset {preset.name!r} (rows: {', '.join(rows) or 'none'}); "
                          "run benchmarks/gpu_throughput.py --presets {preset.name} --json")
    return rows[preset.name]


def plan_preset(preset: Preset, target: Target, runtime: Runtime, data: Path | None = None,
                from_bench: Path | None = None, steps: int = 20, eval_tokens: int = 1 << 20,
                val_tokens: int = FINEWEB_VAL_TOKENS) -> tuple[Plan, dict]:
    if from_bench is not None:
        row = bench_row(from_bench, preset)
    else:
        if runtime.device.type != "cuda":
            raise ConfigError(f"measuring for {target.label} needs a CUDA GPU, and this machine has "
                              f"{device_name(runtime.device)}; pass --from-bench FILE (benchmarks/gpu_throughput.py --json "
                              "output from a GPU) or run on a GPU")
        with tempfile.TemporaryDirectory(prefix="pgolf-plan-") as tmp:
            data = data or build_default_shards(tmp, preset.model.vocab_size, progress=False, max_chars=PLANNER_CORPUS_CHARS)
            row = measure_preset(preset, target.gpus, data, runtime, steps, eval_tokens)
    plan = project(preset, target, row["train"], row["eval"], preset_pipeline(preset), val_tokens)
    if ",".join(preset_pipeline(preset)) not in row["eval"]:
        plan.verdicts.append(f"evaluation [{','.join(preset_pipeline(preset))}]: not timed (methods not all "
                             "implemented yet, or absent from the benchmark file); see the per-method rows")
    return plan, row
