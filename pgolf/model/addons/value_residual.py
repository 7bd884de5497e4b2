"""Value residual learning (VRL; ResFormer, arXiv 2410.17897): later layers reuse layer 0's values.

v_0 is layer 0's raw value projection W_v h (before any value embedding). Three code variants
exist in the seeds (docs/techniques.md), selected by `mode`:
- "sigmoid" (#1313, #1488): v_i ← (1−σ(γ_i))·v_i + σ(γ_i)·v_0, γ_i init `gate_init` (−1.5);
- "additive" (#731): v_i ← v_i + α_i·v_0, α_i init 0 (so it starts as the baseline);
- "two_scalar" (#549 option): v_i ← λ_i0·v_0 + λ_i1·v_i, λ init (0.5, 0.5).
One parameter set per layer i ≥ 1 (10 scalars at 11 layers for "additive", as #731 logs).
Applied after value embeddings are added to v_i (ORDER after value_embed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pgolf.config import choice
from pgolf.errors import ConfigError
from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("value_residual")
class ValueResidual(AddOn):
    ORDER = 60

    @dataclass
    class Options:
        mode: str = choice("sigmoid", ("sigmoid", "additive", "two_scalar"))
        gate_init: float = -1.5

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        n = model_cfg.num_layers - 1
        if cfg.mode == "sigmoid":
            self.gates = nn.Parameter(torch.full((n,), float(cfg.gate_init)))
        elif cfg.mode == "additive":
            self.alphas = nn.Parameter(torch.zeros(n))
        elif cfg.mode == "two_scalar":
            self.lambdas = nn.Parameter(torch.full((n, 2), 0.5))
        else:
            raise ConfigError(f"model.addons.value_residual.mode must be sigmoid, additive or two_scalar, got {cfg.mode!r}")

    def applies_to(self, layer):
        return layer >= 1

    def values(self, v, layer, ctx):
        v0 = ctx.raw_values[0].to(v.dtype)
        i = layer - 1
        if self.cfg.mode == "sigmoid":
            g = torch.sigmoid(self.gates[i]).to(v.dtype)
            return (1 - g) * v + g * v0
        if self.cfg.mode == "additive":
            return v + self.alphas[i].to(v.dtype) * v0
        lam = self.lambdas[i].to(v.dtype)
        return lam[0] * v0 + lam[1] * v
