"""Value embeddings (VE, PR #374): a second token table added to chosen layers' values.

E_ve ∈ R^{V×dim} (init N(0, 0.01²)), projection dim → H_kv·D, a global scale (init 0.1) and one
scale per target layer (init 1). At each target layer the projected embedding of the current
input token is added to the value projection output before it is split into heads.
Choice: the projection starts at zero but is not flagged zero-init, so `orthogonal_init`
overwrites it as the #549 lineage's global init loop did (docs/techniques.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from pgolf.model.addons.base import ADDONS, AddOn, select_layers
from pgolf.model.blocks import Linear


@ADDONS.register("value_embed")
class ValueEmbed(AddOn):
    ORDER = 40

    @dataclass
    class Options:
        dim: int = 128
        layers: list[int] = field(default_factory=lambda: [-2, -1])
        init_std: float = 0.01
        scale_init: float = 0.1

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.layers = sorted(select_layers(model_cfg.num_layers, cfg.layers, 0))
        kv_dim = model_cfg.num_kv_heads * (model_cfg.model_dim // model_cfg.num_heads)
        self.table = nn.Parameter(torch.randn(model_cfg.vocab_size, cfg.dim) * cfg.init_std)
        self.proj = Linear(cfg.dim, kv_dim)
        nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(float(cfg.scale_init)))
        self.layer_scales = nn.Parameter(torch.ones(len(self.layers)))

    def applies_to(self, layer):
        return layer in self.layers

    def parameter_role(self, param_name):
        return "table" if param_name == "table" else "scalar"

    def values(self, v, layer, ctx):
        ve = ctx.stash.get("value_embed")
        if ve is None:
            ve = self.proj(self.table[ctx.ids].to(v.dtype))
            ctx.stash["value_embed"] = ve
        k = self.layers.index(layer)
        return v + (self.scale * self.layer_scales[k]).to(v.dtype) * ve
