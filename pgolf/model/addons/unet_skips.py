"""U-Net skip connections (naive baseline; credited to PR #289).

The first ⌊L/2⌋ blocks push their outputs on a stack; each of the mirrored decoder blocks first
adds `s_j ⊙ pop()` (s_j per-channel, init 1). With L=9: 4 encoder + 5 decoder blocks, 4 skips,
the last decoder block gets none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("unet_skips")
class UNetSkips(AddOn):
    ORDER = 90  # push the block's final output, after any gate on it

    @dataclass
    class Options:
        pass

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.num_encoder = model_cfg.num_layers // 2
        num_skips = min(self.num_encoder, model_cfg.num_layers - self.num_encoder)
        self.skip_weights = nn.Parameter(torch.ones(num_skips, model_cfg.model_dim))

    def parameter_role(self, param_name):
        return "control"  # the contest's skip_weight pattern: Adam at the scalar LR, kept in float

    def after_block(self, x_in, x, layer, ctx):
        if layer < self.num_encoder:
            ctx.stash.setdefault("unet", []).append(x)
        return x

    def before_block(self, x, layer, ctx):
        stack = ctx.stash.get("unet")
        if layer >= self.num_encoder and stack:
            x = x + self.skip_weights[layer - self.num_encoder].to(x.dtype) * stack.pop()
        return x
