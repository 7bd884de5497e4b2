"""XSA, exclusive self-attention (arXiv 2603.09078; #549 lineage, "XSA-4", "XSA-all").

Per head, remove from the attention output y_i its component along the token's own value:
z_i = y_i − (y_iᵀ v̂_i) v̂_i, v̂_i = v_i/‖v_i‖, before the output projection. With GQA each query
head uses its KV head's value (broadcast over the group, no repeat). v is the value that fed
attention, i.e. after value embeddings / value residual. `last = N` acts on the last N layers
(0 = all); `layers = [...]` picks layers explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F

from pgolf.model.addons.base import ADDONS, AddOn, select_layers


@ADDONS.register("xsa")
class XSA(AddOn):
    @dataclass
    class Options:
        last: int = 0
        layers: list[int] = field(default_factory=list)

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.layers = select_layers(model_cfg.num_layers, cfg.layers, cfg.last)

    def applies_to(self, layer):
        return layer in self.layers

    def attn_output(self, y, v, layer, ctx):
        b, h, t, d = y.shape
        hkv = v.size(1)
        yg = y.view(b, hkv, h // hkv, t, d)
        vn = F.normalize(v, dim=-1).unsqueeze(2)
        return (yg - (yg * vn).sum(-1, keepdim=True) * vn).view(b, h, t, d)
