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


def check_context_schedule(preset: Preset) -> None:
    """Stages from fraction 0, ascending, each context dividing a rank's micro-batch of every world
    size the batch allows (checked at one rank here; more ranks are checked when they start), and,
    with packed rows, a document isolation to cut documents at it."""
    cfg = preset.train
    stages = cfg.seq_len_schedule
    if not stages:
        return
    where = "train.seq_len_schedule"
    try:
        pairs = [(float(a), int(b)) for a, b in stages]
    except (TypeError, ValueError):
        raise ConfigError(f"{where} = {stages!r}: give [[fraction, seq_len], ...], e.g. [[0.0, 1024], [0.3, 2048]]") from None
    fracs = [a for a, _ in pairs]
    if fracs[0] != 0.0 or any(b <= a for a, b in zip(fracs, fracs[1:])) or fracs[-1] >= 1.0:
        raise ConfigError(f"{where}: fractions must start at 0.0 and rise strictly below 1.0, got {fracs}")
    micro = cfg.tokens_per_step // max(cfg.grad_accum, 1)
    for _, length in pairs:
        if length <= 0 or (not cfg.packed_rows and micro % length):
            raise ConfigError(f"{where}: seq_len {length} must be positive and divide a micro-batch of "
                              f"{micro:,} tokens (train.tokens_per_step / train.grad_accum)")
    if cfg.packed_rows and "doc_isolation" not in preset.model.addons:
        raise ConfigError(f"{where} with train.packed_rows needs [model.addons.doc_isolation] to cut documents")
