"""One trial of a sweep: train the base preset with the trial's overrides once per seed, pack it
with the preset's own settings, and score the round-tripped artifact with the sweep's eval
pipeline. The objective is the mean roundtrip val_bpb over the seeds.

Under torchrun every rank trains and scores its share; rank 0 alone talks to the study (its
`report` callable) and the decision to prune is shared with the other ranks.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pgolf.artifact.pack import pack_run
from pgolf.evaluate.artifact_eval import evaluate_artifact
from pgolf.job.preset import with_overrides
from pgolf.rundir import RESUME_FILE, WEIGHTS_FILE
from pgolf.runtime import Runtime, share_from_main
from pgolf.sweep.space import Sweep
from pgolf.train.loop import train


class PruneTrial(Exception):
    """Raised inside training when the study's pruner stops a trial."""


@dataclass
class TrialTask:
    """What a trial runs (JSON-able: it is broadcast to the other ranks under torchrun)."""

    number: int
    overrides: list[str]
    directory: str

    def as_dict(self) -> dict:
        return {"number": self.number, "overrides": self.overrides, "directory": self.directory}


def run_trial(sweep: Sweep, task: TrialTask, data: Path, tokenizer: str | None, runtime: Runtime,
              report: Callable[[int, float], bool] | None = None) -> dict:
    """Returns {"value": mean bpb, "seeds": [{seed, val_bpb, val_loss, steps, ...}]}. `report(step,
    val_bpb)` (rank 0) returns True when the trial should stop; PruneTrial is then raised on every rank."""
    f = sweep.file
    out = Path(task.directory)
    seeds = []
    trial_preset = with_overrides(sweep.base, task.overrides)
    budget = sweep.budget_overrides(trial_preset)
    for i, seed in enumerate(f.seeds):
        preset = with_overrides(trial_preset, budget + [f"train.seed={seed}"])
        run_dir = out / f"seed_{seed}"

        def on_validation(step: int, val_loss: float, val_bpb: float, first=(i == 0)) -> None:
            # Prune on the first seed's curve: later seeds repeat a configuration already judged.
            stop = report(step, val_bpb) if (first and report is not None and runtime.is_main) else False
            if share_from_main(bool(stop), runtime):
                raise PruneTrial(f"pruned at step {step} (val_bpb {val_bpb:.4f})")

        t0 = time.perf_counter()
        summary = train(preset, data, run_dir, runtime, tokenizer=tokenizer, progress=False,
                        on_validation=on_validation)
        packed = share_from_main(pack_run(run_dir, allow_over_budget=True) if runtime.is_main else None, runtime)
        ev = evaluate_artifact(packed["artifact"], data, runtime, tokenizer=tokenizer, methods=f.methods,
                               limit=f.limit_val_tokens)
        seeds.append({"seed": seed, "val_bpb": ev["val_bpb"], "val_loss": ev["val_loss"], "steps": summary["steps"],
                      "train_loss": summary["train_loss"], "pre_quant_val_bpb": summary["val_bpb"],
                      "tokens_per_second": summary["tokens_seen"] / max(summary["train_time_ms"] / 1000, 1e-9),
                      "total_bytes": packed["total_bytes"], "fits": packed["fits"],
                      "seconds": time.perf_counter() - t0})
        if not f.keep_weights and runtime.is_main:
            remove_weights(run_dir)
    return {"value": statistics.fmean(s["val_bpb"] for s in seeds), "seeds": seeds}


def remove_weights(run_dir: Path) -> None:
    """Drop a run's weights and resume state; its logs, metrics and artifact stay."""
    for name in (WEIGHTS_FILE, RESUME_FILE):
        (run_dir / name).unlink(missing_ok=True)


def remove_trial_weights(directory: Path) -> None:
    """A pruned trial keeps its logs, not its weights."""
    for run_dir in Path(directory).glob("seed_*"):
        remove_weights(run_dir)
