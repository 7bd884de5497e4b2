"""What the head-to-head benchmarks against other people's scripts share (vs_official.py, vs_record.py):
one process without torchrun's variables, and pgolf's per-step train losses as its run logged them."""

from __future__ import annotations

import json
from pathlib import Path

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def single_process(env: dict[str, str]) -> dict[str, str]:
    """`env` without torchrun's variables: the script under test runs as one process, no process group."""
    return {k: v for k, v in env.items() if k not in TORCHRUN_VARIABLES}


def train_losses(run_dir: Path) -> list[float]:
    """The train loss of every logged step of a pgolf run (metrics.jsonl, full precision)."""
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if r["kind"] == "train"]
