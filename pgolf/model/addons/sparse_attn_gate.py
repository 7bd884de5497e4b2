"""SparseAttnGate (#1787, from modded-nanogpt; in the 1.0611 record): per head, the attention
output is multiplied by σ(β · w_hᵀ u[:window]) before the output projection, where u is the
normalised input of that attention and w_h ∈ R^window is zero-initialised (so every head starts
at half output; the block's attn_scale compensates). β = `scale` (the record: 0.5). It lets a
head output a near no-op without spending attention on BOS. 8 heads × 12 = 96 parameters a layer.
Applied after XSA, as the record's code does."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pgolf.errors import ConfigError
from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("sparse_attn_gate")
class SparseAttnGate(AddOn):
    ORDER = 60  # after XSA (50) on the attention output
    GATE_PARAMETERS = ("weight",)  # int8 per head with pack.gate_bits = 8 (the record)

    @dataclass
    class Options:
        window: int = 12
        scale: float = 1.0
        init_std: float = 0.0

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        if not 0 < cfg.window <= model_cfg.model_dim:
            raise ConfigError(f"model.addons.sparse_attn_gate.window must lie in 1..{model_cfg.model_dim}")
        self.weight = nn.Parameter(torch.zeros(model_cfg.num_layers, model_cfg.num_heads, cfg.window))
        if cfg.init_std > 0:
            nn.init.normal_(self.weight, std=cfg.init_std)

    def attn_output(self, y, v, layer, ctx):
        u = ctx.attn_input[..., : self.cfg.window]  # (B, T, window)
        g = torch.sigmoid(self.cfg.scale * F.linear(u, self.weight[layer].to(u.dtype)))  # (B, T, H)
        return y * g.transpose(1, 2).unsqueeze(-1).to(y.dtype)
