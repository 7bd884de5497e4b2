"""`pgolf seeds PRESET --seeds 42,1337,2024 --data DIR --out DIR`: train + pack + eval per seed, each
into `OUT/seed_<n>/`. Resumable between seeds: a seed whose results.json exists is not re-run
(a seed interrupted mid-training starts over)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pgolf.job.preset import with_overrides
from pgolf.rundir import RESULTS_FILE, RUN_SUBDIR
from pgolf.errors import ConfigError


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. 42,1337,2024") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: give at least one seed, each once")
    return seeds


def run_seeds(preset, seeds: list[int], data: Path, out: Path, tokenizer=None, device: str = "auto",
              limit_val_tokens: int = 0, progress: bool | None = None, audit_tokens: int | None = None) -> list[dict]:
    from pgolf.job.run import run_main_job

    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in seeds:
        seed_dir = out / f"seed_{seed}"
        done = seed_dir / RUN_SUBDIR / RESULTS_FILE
        if done.is_file():
            print(f"seeds: seed {seed} already done ({done}), skipping", file=sys.stderr, flush=True)
            results.append(json.loads(done.read_text()))
            continue
        print(f"seeds: seed {seed} -> {seed_dir}", file=sys.stderr, flush=True)
        r = run_main_job(with_overrides(preset, [f"train.seed={seed}"]), data=data, tokenizer=tokenizer,
                         out=seed_dir, device=device, progress=progress, limit_val_tokens=limit_val_tokens,
                         audit_tokens=audit_tokens)
        results.append(r)
    return results
