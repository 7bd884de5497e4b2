"""Gradient steps on already-chosen validation tokens — the shared engine of score-first TTT and of
the illegal fixtures that train before scoring (docs/techniques.md).

`trainable_parameters` picks what adapts: everything except the first `freeze_first_blocks`
blocks (#549/#1150/#1207), or only the last `train_last_blocks` blocks plus parameters whose
name contains one of `train_name_patterns` (#700/#731's "unfreeze the last N" reading).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist

from pgolf.runtime import autocast_context


def trainable_parameters(model: torch.nn.Module, freeze_first_blocks: int = 0, train_last_blocks: int = 0,
                         name_patterns: list[str] | tuple[str, ...] = ()) -> list[tuple[str, torch.nn.Parameter]]:
    n_blocks = len(model.blocks)
    chosen = []
    for name, p in model.named_parameters():
        block = int(name.split(".")[1]) if name.startswith("blocks.") else None
        if train_last_blocks > 0:
            keep = (block is not None and block >= n_blocks - train_last_blocks) or any(s in name for s in name_patterns)
        else:
            keep = block is None or block >= freeze_first_blocks
        if keep:
            chosen.append((name, p))
    return chosen


OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("cosine", "cosine-ramp", "constant")


def make_optimizer(params: list[torch.nn.Parameter], kind: str, lr: float, momentum: float,
                   betas: list[float], weight_decay: float) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    from pgolf.errors import ConfigError

    raise ConfigError(f"TTT optimizer must be one of {', '.join(OPTIMIZERS)}, got {kind!r}")


def chunk_lr(base: float, k: int, n_chunks: int, schedule: str, floor: float = 0.0) -> float:
    """#549: cosine over chunks; #606/#700/#731 ("cosine-ramp"): ×(1 + 2·min(k/0.3K, 1)) on top."""
    if schedule == "constant" or n_chunks <= 1:
        lr = base
    else:
        lr = base * 0.5 * (1 + math.cos(math.pi * k / (n_chunks - 1)))
        if schedule == "cosine-ramp":
            lr *= 1 + 2 * min(k / (0.3 * n_chunks), 1.0)
    return max(lr, floor * base)


def train_on_span(model, tokens: np.ndarray, lo: int, hi: int, seq_len: int, params, optimizer,
                  lr: float, epochs: int, batch_seqs: int, grad_clip: float, runtime, byte_tables=None,
                  byte_weighting: str = "", after_step=None) -> int:
    """Train on targets lo..hi−1 (inputs tokens[lo:hi], targets tokens[lo+1:hi+1]) as whole sequences
    of seq_len; ranks take contiguous shares and average gradients. Returns the steps taken."""
    n_seqs = (hi - lo) // seq_len
    if n_seqs == 0:
        return 0
    span = torch.from_numpy(tokens[lo : lo + n_seqs * seq_len + 1].astype(np.int64)).to(runtime.device)
    x_all, y_all = span[:-1].view(n_seqs, seq_len), span[1:].view(n_seqs, seq_len)
    first = n_seqs * runtime.rank // runtime.world_size
    last = n_seqs * (runtime.rank + 1) // runtime.world_size
    for g in optimizer.param_groups:
        g["lr"] = lr
    was_training = model.training
    model.train()
    steps = 0
    for _ in range(epochs):
        for s in range(first, max(last, first + 1), batch_seqs):
            e = min(s + batch_seqs, last)
            x, y = x_all[s:e], y_all[s:e]
            optimizer.zero_grad(set_to_none=True)
            with torch.enable_grad():
                if x.numel():
                    with autocast_context(runtime):
                        nats = model(x, y, reduction="none").float()
                    if byte_weighting and byte_tables is not None:
                        positions = lo + torch.arange(s * seq_len, e * seq_len, device=y.device).view(-1, seq_len)
                        w = (byte_tables.count(x, y, positions).float() if byte_weighting == "exact"
                             else byte_tables.base_bytes[y].float())
                        loss = (nats * w).sum() / w.sum().clamp_min(1) if byte_weighting == "exact" else (nats * w / w.mean().clamp_min(1e-9)).mean()
                    else:
                        loss = nats.mean()
                    loss.backward()
            if runtime.distributed:
                for p in params:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            steps += 1
            if after_step is not None:
                after_step()
    model.train(was_training)
    return steps
