"""SmearGate v3 (#1667; BOS fix #1851; in the 1.0611 record): on the raw token embedding, before
the first RMSNorm, each position adds a content-gated share of the previous position's:

    e_t ← e_t + λ · σ(wᵀ e_t[:window]) · e_{t−1} · [x_t ≠ BOS]      (t ≥ 1)

w ∈ R^window zero-init, λ scalar init 0, so the add-on starts as the identity (13 parameters).
The BOS factor stops the last token of one document leaking into the first prediction of the
next in packed rows. `bos_id` < 0 turns it off, as #2135's code ran (SMEAR_GATE_BOS_FIX=0): still
causal, the previous token is already seen, only the documents are no longer separate there."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("smear_gate_v3")
class SmearGateV3(AddOn):
    @dataclass
    class Options:
        window: int = 12
        bos_id: int = 1

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.gate = nn.Parameter(torch.zeros(cfg.window))
        self.strength = nn.Parameter(torch.zeros(1))

    def embed(self, x, ctx):
        g = self.strength.to(x.dtype) * torch.sigmoid(F.linear(x[:, 1:, : self.cfg.window], self.gate[None].to(x.dtype)))
        prev = x[:, :-1]
        if self.cfg.bos_id >= 0:
            prev = prev * (ctx.ids[:, 1:] != self.cfg.bos_id).unsqueeze(-1).to(x.dtype)
        return torch.cat([x[:, :1], x[:, 1:] + g * prev], dim=1)
