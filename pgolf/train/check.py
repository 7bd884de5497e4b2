"""Whole-preset checks of `[train]` settings that depend on other sections (run when a preset
loads, `pgolf.job.preset`)."""

from __future__ import annotations

from pgolf.config import Preset
from pgolf.errors import ConfigError

# Longest packed row the boolean document mask may hold (row² booleans per row: 64 MiB here).
MAX_MASKED_PACKED_ROW = 8192


def check_packed_rows(preset: Preset) -> None:
    """Packed rows are only sound with documents kept apart, each piece at most max_segment long,
    by a kernel that can hold the row."""
    cfg = preset.train
    if not cfg.packed_rows:
        return
    iso = preset.model.addons.get("doc_isolation")
    if iso is None or int(iso.get("max_segment", 0)) <= 0:
        raise ConfigError("train.packed_rows = true needs [model.addons.doc_isolation] with max_segment > 0 "
                          "(e.g. train.seq_len), or every token would attend over the whole packed row")
    row = cfg.tokens_per_step // max(cfg.grad_accum, 1)
    if iso.get("kernel", "mask") == "mask" and row > MAX_MASKED_PACKED_ROW:
        raise ConfigError(f"train.packed_rows: a packed row of {row:,} tokens needs "
                          f"model.addons.doc_isolation.kernel = \"flex\" or \"varlen\" (the boolean mask would hold "
                          f"{row:,}² booleans)")
