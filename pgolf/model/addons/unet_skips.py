"""U-Net skip connections (naive baseline; credited to PR #289), optionally sigmoid-gated (#1218).

The first ⌊V/2⌋ blocks of the run order (V = virtual layers: L, or more with depth recurrence)
push their outputs on a stack; each later block j first merges pop() as long as a skip weight is
left: x ← x + s_j ⊙ pop() (s_j per-channel, init 1), or with `gated` (the frontier's form)
x ← σ(g_j) ⊙ x + (1 − σ(g_j)) ⊙ (s_j ⊙ pop()), g_j init 0. With L=9: 4 encoder + 5 decoder blocks,
4 skips, the last decoder block gets none. Weights are sized for the longest order (with the
1.0611 record's recurrence: 17 virtual layers, 8 skips; its unrolled first phase uses the first 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pgolf.model.addons.base import ADDONS, AddOn
from pgolf.model.recurrence import longest_run


@ADDONS.register("unet_skips")
class UNetSkips(AddOn):
    ORDER = 90  # push the block's final output, after any gate on it

    @dataclass
    class Options:
        gated: bool = False

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        virtual = longest_run(model_cfg)
        num_skips = min(virtual // 2, virtual - virtual // 2)
        self.skip_weights = nn.Parameter(torch.ones(num_skips, model_cfg.model_dim))
        self.skip_gates = nn.Parameter(torch.zeros(num_skips, model_cfg.model_dim)) if cfg.gated else None

    def parameter_role(self, param_name):
        return "control"  # the contest's skip_weight pattern: Adam at the scalar LR, kept in float

    def after_block(self, x_in, x, layer, ctx):
        if ctx.virtual < ctx.num_virtual // 2:
            ctx.stash.setdefault("unet", []).append(x)
        return x

    def before_block(self, x, layer, ctx):
        stack = ctx.stash.get("unet")
        j = ctx.virtual - ctx.num_virtual // 2
        if j >= 0 and stack and j < self.skip_weights.size(0):
            skip = self.skip_weights[j].to(x.dtype) * stack.pop()
            if self.skip_gates is None:
                return x + skip
            return torch.lerp(skip, x, torch.sigmoid(self.skip_gates[j]).to(x.dtype))
        return x
