"""Which training state is kept in bf16 (`train.bf16_state`, #1855's precision).

The record casts its model to bf16 and restores fp32 for every matrix bank, control tensor and
vector, so that only the tied token embedding stays bf16 — and with it its AdamW moments, which
take the parameter's dtype; its Muon keeps momentum in bf16 too. pgolf reproduces exactly that on
CUDA, where autocast already computes in bf16. On CPU everything stays fp32: bf16 arithmetic there
is emulated, slower, and without autocast an fp32 matmul would meet a bf16 activation.
"""

from __future__ import annotations

import torch
from torch import nn

from pgolf.config import TrainConfig


def wants_bf16_state(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.bf16_state and device.type == "cuda"


def keep_embedding_in_bf16(model: nn.Module) -> None:
    """The token embedding's storage in bf16 (before the optimizers exist, so Adam's moments follow)."""
    weight = model.tok_emb.weight
    weight.data = weight.data.to(torch.bfloat16)


def muon_momentum_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    return torch.bfloat16 if wants_bf16_state(cfg, device) else None


def restore_fp32_embedding(model: nn.Module) -> None:
    """Back to fp32 once training is done (exact: every bf16 value is an fp32 value), so calibration,
    checkpoint and pack see the float weights they always do. The final weights are the averaged ones
    rounded to bf16 first, as the record's EMA load does."""
    weight = model.tok_emb.weight
    if weight.dtype != torch.float32:
        weight.data = weight.data.float()
