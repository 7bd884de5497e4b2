"""Run logging: contest-style text lines (train.log), JSON-lines metrics, a terminal progress bar.

Only rank 0 writes. Log lines go to stderr so that `--json` keeps stdout for the result object.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from pgolf.rundir import METRICS_FILE, TRAIN_LOG_FILE


class RunLog:
    def __init__(self, run_dir: Path | None, enabled: bool, progress: bool | None = None,
                 total_seconds: float = 0.0, echo: bool = True) -> None:
        self.enabled = enabled
        self.echo = echo
        self.text = open(run_dir / TRAIN_LOG_FILE, "a", encoding="utf-8") if enabled and run_dir else None
        self.metrics = open(run_dir / METRICS_FILE, "a", encoding="utf-8") if enabled and run_dir else None
        show = sys.stderr.isatty() if progress is None else progress
        self.bar = None
        if enabled and show and total_seconds > 0:
            self.bar = tqdm(total=round(total_seconds), unit="s", desc="train", file=sys.stderr,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s {postfix}")

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.text:
            self.text.write(text + "\n")
            self.text.flush()
        if self.echo:
            if self.bar is not None:
                self.bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)

    def metric(self, **values) -> None:
        if self.enabled and self.metrics:
            values.setdefault("time", time.time())
            self.metrics.write(json.dumps(values) + "\n")
            self.metrics.flush()

    def progress(self, seconds: float, **postfix) -> None:
        if self.bar is not None:
            self.bar.n = min(seconds, self.bar.total)
            self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        for f in (self.text, self.metrics):
            if f:
                f.close()
