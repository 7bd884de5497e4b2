"""SmearGate v2 (PR #162 lineage, used by every seed): blend each position's normalised
embedding with the previous position's, per channel: g = σ(γ), γ ∈ R^d init 0 (g = 0.5);
x_t ← (1−g)⊙x_t + g⊙x_{t−1}, x_{−1} = 0. Applied right after the first RMSNorm; the result is
x0. Causal by construction. `bos_id` ≥ 0 (off by default, as in the seeds): a BOS position takes
nothing from the position before it, so packed documents do not leak into each other."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("smear_gate")
class SmearGate(AddOn):
    @dataclass
    class Options:
        gate_init: float = 0.0
        bos_id: int = -1

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.smear = nn.Parameter(torch.full((model_cfg.model_dim,), float(cfg.gate_init)))

    def post_embed(self, x, ctx):
        g = torch.sigmoid(self.smear).to(x.dtype)
        prev = F.pad(x[:, :-1], (0, 0, 1, 0))
        if self.cfg.bos_id >= 0:
            prev = prev * (ctx.ids != self.cfg.bos_id).unsqueeze(-1).to(x.dtype)
        return (1 - g) * x + g * prev
