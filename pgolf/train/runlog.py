"""Run logging: contest-style text lines (train.log), JSON-lines metrics, a terminal progress bar.

Only rank 0 writes. Log lines go to stderr so that `--json` keeps stdout for the result object.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any, Iterator
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

    def line(self, text: str, echo: bool = True) -> None:
        """`echo`: False keeps the line in train.log only (the hyperparameters block)."""
        if not self.enabled:
            return
        if self.text:
            self.text.write(text + "\n")
            self.text.flush()
        if self.echo and echo:
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


def flat_settings(table: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """`section.key`, value pairs of a nested settings table, sorted: the log's hyperparameters block
    (one line per setting, as the contest's scripts print theirs, so two seeds' logs can be compared
    line by line)."""
    for key in sorted(table):
        value = table[key]
        if isinstance(value, dict) and value:
            yield from flat_settings(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", json.dumps(value) if isinstance(value, (list, dict, str)) else str(value)


def wall_stamp() -> str:
    """The wall clock as a log field: UTC, ISO 8601, to the millisecond (pgolf check measures
    stages by it, beside the stages' own timers)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
