"""XSA, exclusive self-attention (arXiv 2603.09078; #549 lineage, "XSA-4", "XSA-all").

Per head, remove from the attention output y_i its component along the token's own value:
z_i = y_i − (y_iᵀ v̂_i) v̂_i, v̂_i = v_i/‖v_i‖, before the output projection. With GQA each query
head uses its KV head's value (broadcast over the group, no repeat). v is the value that fed
attention, i.e. after value embeddings / value residual. `last = N` acts on the last N layers
(0 = all); `layers = [...]` picks layers explicitly.

`gated = true` is gated XSA (modded-nanogpt #264; #2018, #2118, #2123 — not in #2135's code): a
learnable α per layer and head scales the removed component, z = y − tanh(α)·(yᵀv̂)v̂, as #2118's
code does; α starts at `gate_init` — 0 is the attention without XSA exactly, a large α (tanh = 1)
is XSA — so training decides how much of it each head takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pgolf.model.addons.base import ADDONS, AddOn, select_layers


@ADDONS.register("xsa")
class XSA(AddOn):
    @dataclass
    class Options:
        last: int = 0
        layers: list[int] = field(default_factory=list)
        gated: bool = False
        gate_init: float = 0.0

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.layers = select_layers(model_cfg.num_layers, cfg.layers, cfg.last)
        self.slot = {layer: i for i, layer in enumerate(sorted(self.layers))}
        if cfg.gated:
            self.gates = nn.Parameter(torch.full((len(self.layers), model_cfg.num_heads), float(cfg.gate_init)))

    def parameter_role(self, param_name: str) -> str:
        return "control"

    def applies_to(self, layer):
        return layer in self.layers

    def attn_output(self, y, v, layer, ctx):
        b, h, t, d = y.shape
        hkv = v.size(1)
        yg = y.view(b, hkv, h // hkv, t, d)
        vn = F.normalize(v, dim=-1).unsqueeze(2)
        removed = (yg * vn).sum(-1, keepdim=True) * vn
        if self.cfg.gated:
            g = torch.tanh(self.gates[self.slot[layer]]).to(y.dtype).view(1, hkv, h // hkv, 1, 1)
            removed = g * removed
        return (yg - removed).view(b, h, t, d)
