"""Learning-rate multiplier and Muon momentum warm-up of the baseline (docs/techniques.md).

The LR is constant, then decays linearly to zero (or to the floor `min_lr`, #1787) exactly when
the wallclock cap is reached:
the warmdown lasts `warmdown_iters` steps at the measured average step time (or, with
`warmdown_fraction`, that fraction of the cap). Without a cap it is step-based: `warmdown_iters`
steps, or `warmdown_fraction` of `iterations` (so a fixed-step run, e.g. a sweep trial that must not
depend on the machine's load, follows the same schedule as a wallclock run of that many steps).
"""

from __future__ import annotations

from pgolf.config import TrainConfig


def training_cap_ms(cfg: TrainConfig) -> float:
    """The clock the optimizer steps may use: the cap minus any calibration reserve."""
    return max(cfg.max_wallclock_seconds - cfg.gptq_reserve_seconds, 0.0) * 1000.0


def training_fraction(cfg: TrainConfig, step: int, elapsed_ms: float) -> float:
    """How much of the run is done: of the wallclock cap, or of `iterations` without one."""
    cap_ms = training_cap_ms(cfg)
    if cfg.max_wallclock_seconds > 0 and cap_ms > 0:
        return min(elapsed_ms / cap_ms, 1.0)
    return min(step / max(cfg.iterations, 1), 1.0)


def lr_multiplier(cfg: TrainConfig, step: int, elapsed_ms: float) -> float:
    cap_ms = training_cap_ms(cfg)
    if cfg.max_wallclock_seconds <= 0:
        warmdown = cfg.warmdown_fraction * cfg.iterations if cfg.warmdown_fraction > 0 else cfg.warmdown_iters
        if warmdown <= 0:
            return 1.0
        if step < cfg.iterations - warmdown:
            return 1.0
        return max((cfg.iterations - step) / warmdown, cfg.min_lr)
    if cfg.warmdown_fraction > 0:
        warmdown_ms = cfg.warmdown_fraction * cap_ms
    elif cfg.warmdown_iters > 0:
        warmdown_ms = cfg.warmdown_iters * (elapsed_ms / max(step, 1))
    else:
        return 1.0
    remaining_ms = max(cap_ms - elapsed_ms, 0.0)
    if remaining_ms <= warmdown_ms:
        return max(remaining_ms / max(warmdown_ms, 1e-9), cfg.min_lr)
    return 1.0


def muon_momentum(cfg: TrainConfig, step: int, elapsed_ms: float = 0.0) -> float:
    """Linear from `muon_momentum_warmup_start` to `muon_momentum` over `muon_momentum_warmup_steps`
    steps, or, with `muon_momentum_warmup_fraction`, over that fraction of the wallclock cap (of
    `iterations` when there is no cap)."""
    cap_ms = training_cap_ms(cfg)
    if cfg.muon_momentum_warmup_fraction > 0 and cap_ms > 0:
        frac = min(elapsed_ms / (cfg.muon_momentum_warmup_fraction * cap_ms), 1.0)
    elif cfg.muon_momentum_warmup_fraction > 0 and cfg.iterations > 0:
        frac = min(step / (cfg.muon_momentum_warmup_fraction * cfg.iterations), 1.0)
    elif cfg.muon_momentum_warmup_steps <= 0:
        return cfg.muon_momentum
    else:
        frac = min(step / cfg.muon_momentum_warmup_steps, 1.0)
    return (1 - frac) * cfg.muon_momentum_warmup_start + frac * cfg.muon_momentum


def context_at(cfg: TrainConfig, frac: float) -> int:
    """The training context at a fraction of the run: the last `seq_len_schedule` stage begun
    (seq_len without a schedule)."""
    current = cfg.seq_len
    for start, length in cfg.seq_len_schedule:
        if frac >= start:
            current = int(length)
    return current


def context_stages(cfg: TrainConfig) -> list[tuple[float, int]]:
    """(first fraction, seq_len) of each stage of the training context."""
    return [(float(a), int(b)) for a, b in cfg.seq_len_schedule] or [(0.0, cfg.seq_len)]
