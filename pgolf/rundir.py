"""The run-directory contract: every file a run directory holds, and the one builder of
`state.json`. Training writes the first four, `pgolf pack` the artifact, `pgolf audit` its record,
`pgolf run` the results and the exported script; everything that reads a run directory (pack,
eval, submit, report, compare, plots) finds its files through these names.

    model.safetensors      final (or latest periodic) weights; no pickle
    state.json             step, completeness, preset, data, code identity (+ summary when complete)
    resume.safetensors     everything needed to continue after a crash (`pgolf train --resume`)
    train.log / metrics.jsonl   contest-style log lines / one JSON object per logged event
    hessians.safetensors / calibration.json   in-cap GPTQ calibration and its provenance
    model.pgolf            the packed artifact;  model.pgolf.audit.json: its audit verdicts
    results.json           `pgolf run`'s whole result;  train_gpt.py: the exported submission
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.json"
RESUME_FILE = "resume.safetensors"
TRAIN_LOG_FILE = "train.log"
METRICS_FILE = "metrics.jsonl"
HESSIANS_FILE = "hessians.safetensors"
CALIBRATION_FILE = "calibration.json"
ARTIFACT_FILE = "model.pgolf"
RESULTS_FILE = "results.json"
SCRIPT_FILE = "train_gpt.py"
RUN_SUBDIR = "run"  # `pgolf run --out W` keeps its run directory at W/run (W/data: the embedded shards)


def audit_record(artifact: str | Path) -> Path:
    """Where `pgolf audit` keeps an artifact's verdicts: next to it, `ARTIFACT.audit.json`."""
    return Path(str(artifact) + ".audit.json")


def find_results(path: str | Path) -> Path | None:
    """A run's results.json given the file, its run directory, or `pgolf run --out`'s directory."""
    p = Path(path)
    for cand in (p, p / RESULTS_FILE, p / RUN_SUBDIR / RESULTS_FILE):
        if cand.is_file():
            return cand
    return None


def state_record(*, step: int, preset: dict[str, Any], data: dict[str, Any], code: dict[str, str],
                 summary: dict[str, Any] | None = None, train_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one payload of state.json: a periodic checkpoint has no summary (complete: false); the
    final one carries the summary and the training config it ran with."""
    state: dict[str, Any] = {"step": step, "complete": summary is not None, "preset": preset, "data": data,
                             "code": code}
    if summary is not None:
        state["summary"] = summary
        state["train_config"] = train_config
    return state
