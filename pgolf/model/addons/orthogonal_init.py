"""Orthogonal init (PR #162 lineage): `orthogonal_(gain=1)` for every 2-D linear with both dims
≥ 64 that is not flagged zero-init (attention/MLP output projections stay zero).

`scale_proj = true` reproduces the #162/#731/#700 lineage's "output projections scaled by
1/√(2L)", which in code multiplies every orthogonally-initialised module whose name ends in
`.proj` — in practice only the BigramHash/VE projections (docs/techniques.md). The #549 code
leaves them unscaled (`scale_proj = false`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("orthogonal_init")
class OrthogonalInit(AddOn):
    ORDER = 99

    @dataclass
    class Options:
        scale_proj: bool = False

    def init_weights(self, model):
        scale = 1.0 / math.sqrt(2 * self.model_cfg.num_layers)
        with torch.no_grad():
            for name, module in model.named_modules():
                if not isinstance(module, nn.Linear) or getattr(module, "zero_init", False):
                    continue
                if min(module.weight.shape) < 64:
                    continue
                nn.init.orthogonal_(module.weight, gain=1.0)
                if self.cfg.scale_proj and name.endswith(".proj"):
                    module.weight.mul_(scale)
