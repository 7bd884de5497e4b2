"""Parallel residual lanes (#1529/#1530 form; in the 1.0611 record from layer 8).

From the first layer ≥ `start` on, the residual stream is two lanes, both copies of x there.
Per layer i ≥ start, both sublayers read the *old* lanes:

    a = attn_scale · Attn(norm(m0·lane0 + m1·x0))       m = the block's resid_mix
    m = mlp_scale · MLP(norm(lane1))
    lane0 ← ρ_i0·lane0 + π_i[0,0]·a + π_i[1,0]·m
    lane1 ← ρ_i1·lane1 + π_i[0,1]·a + π_i[1,1]·m

ρ init 1.1, π init 1 (as the record's code; its README's "init √1.1" describes #1204). U-Net
skips merge into lane0 only; the final hidden state is ½(lane0 + lane1). The record keeps ρ and
π for every layer (11×2 + 11×2×2 = 66 parameters) though only layers ≥ start use them; so does
this add-on, to match its parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pgolf.config import choice
from pgolf.errors import ConfigError
from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("parallel_lanes")
class ParallelLanes(AddOn):
    ORDER = 10  # copy x into the second lane before the U-Net skip (90) merges into lane0

    @dataclass
    class Options:
        start: int = 8
        final: str = choice("mean", ("mean", "attn", "mlp"))  # which lane(s) the head reads

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        if not 0 < cfg.start < model_cfg.num_layers:
            raise ConfigError(f"model.addons.parallel_lanes.start must lie in 1..{model_cfg.num_layers - 1}")
        n = model_cfg.num_layers
        self.resid = nn.Parameter(torch.full((n, 2), 1.1))
        self.post = nn.Parameter(torch.ones(n, 2, 2))

    def applies_to(self, layer):
        return layer >= self.cfg.start

    def before_block(self, x, layer, ctx):
        if "lane1" not in ctx.stash:
            ctx.stash["lane1"] = x
        return x

    def block_forward(self, block, x, x0, layer, ctx):
        lane0, lane1 = x, ctx.stash["lane1"]
        mix = block.resid_mix.to(x.dtype)
        a = block.attn_scale.to(x.dtype) * block.attn(block._norm(mix[0] * lane0 + mix[1] * x0), ctx)
        m = block.mlp_scale.to(x.dtype) * block.mlp(block._norm(lane1))
        rho, pi = self.resid[layer].to(x.dtype), self.post[layer].to(x.dtype)
        ctx.stash["lane1"] = rho[1] * lane1 + pi[0, 1] * a + pi[1, 1] * m
        return rho[0] * lane0 + pi[0, 0] * a + pi[1, 0] * m

    def final_hidden(self, x, ctx):
        lane1 = ctx.stash.get("lane1")
        if lane1 is None or self.cfg.final == "attn":
            return x
        return lane1 if self.cfg.final == "mlp" else 0.5 * (x + lane1)
