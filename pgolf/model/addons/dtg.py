"""DTG gate: a per-token scalar gate on each block's whole update (off by default in every seed
script examined; no measured effect, docs/techniques.md).

g = σ(wᵀ stopgrad(h_in) + c), w ∈ R^d zero-init, c = 2 (g ≈ 0.88); x_out ← h_in + g·(x_out − h_in).
513 parameters per block. Choice: h_in is the residual stream entering the block (before its
resid_mix), the only input the sources describe.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("dtg")
class DTGGate(AddOn):
    ORDER = 40

    @dataclass
    class Options:
        bias_init: float = 2.0

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.gate_w = nn.Parameter(torch.zeros(model_cfg.num_layers, model_cfg.model_dim))
        self.gate_b = nn.Parameter(torch.full((model_cfg.num_layers,), float(cfg.bias_init)))

    def after_block(self, x_in, x, layer, ctx):
        logit = x_in.detach() @ self.gate_w[layer].to(x.dtype) + self.gate_b[layer].to(x.dtype)
        g = torch.sigmoid(logit).unsqueeze(-1)
        return x_in + g * (x - x_in)
