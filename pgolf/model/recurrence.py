"""The run order of depth recurrence (the `depth_recurrence` add-on), kept outside the add-on so
other parts of the model can size themselves for it (U-Net skips) without importing the add-on."""

from __future__ import annotations

from dataclasses import dataclass

from pgolf.config import from_dict
from pgolf.errors import ConfigError


@dataclass
class RecurrenceOptions:
    start: int = 3
    end: int = 5  # inclusive
    loops: int = 2  # extra passes over the span
    enable_at: float = 0.35  # fraction of the run after which the span loops (0 = always)


def run_order(num_layers: int, start: int, end: int, loops: int) -> list[int]:
    """0 … start−1, then [start … end] 1 + loops times, then end+1 … L−1."""
    if not 0 <= start <= end < num_layers:
        raise ConfigError(f"model.addons.depth_recurrence: span {start}..{end} must lie in 0..{num_layers - 1}")
    if loops < 0:
        raise ConfigError(f"model.addons.depth_recurrence.loops must be >= 0, got {loops}")
    span = list(range(start, end + 1))
    return list(range(start)) + span * (loops + 1) + list(range(end + 1, num_layers))


def longest_run(model_cfg) -> int:
    """Virtual layers of the longest order the model runs (what U-Net skips are sized for)."""
    table = (model_cfg.addons or {}).get("depth_recurrence")
    if table is None:
        return model_cfg.num_layers
    opts = from_dict(RecurrenceOptions, table, "model.addons.depth_recurrence")
    return len(run_order(model_cfg.num_layers, opts.start, opts.end, opts.loops))
