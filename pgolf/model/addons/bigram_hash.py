"""BigramHash embedding (PR #162 lineage): a hashed (previous, current) input-token pair table.

h_t = ((36313·x_t) XOR (27191·x_{t−1})) mod (K−1) for t ≥ 1, h_0 = K−1 (per sequence);
x ← tok_emb(x_t) + scale · P · B[h_t], before the first RMSNorm. B ∈ R^{K×dim} zero-init,
P: dim → d, scale init 0.05. Only input tokens are hashed (legal: no target leakage).
Optimizer (#549): the table in the embedding group, projection and scale in the scalar group.
Choice: P starts at zero but is not flagged zero-init, so `orthogonal_init` overwrites it as in
the #549 lineage (docs/techniques.md).
`bos_id` ≥ 0 (off by default, as in the seeds): a position whose token is BOS gets the bucket of
a sequence start, so in rows that pack several documents no pair spans two of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pgolf.model.addons.base import ADDONS, AddOn
from pgolf.model.blocks import Linear

MUL_CURRENT, MUL_PREVIOUS = 36313, 27191


def bigram_buckets(ids: torch.Tensor, buckets: int, bos_id: int = -1) -> torch.Tensor:
    ids = ids.long()
    h = torch.full_like(ids, buckets - 1)
    h[:, 1:] = torch.bitwise_xor(MUL_CURRENT * ids[:, 1:], MUL_PREVIOUS * ids[:, :-1]) % (buckets - 1)
    if bos_id >= 0:
        h = torch.where(ids == bos_id, buckets - 1, h)
    return h


@ADDONS.register("bigram_hash")
class BigramHash(AddOn):
    @dataclass
    class Options:
        buckets: int = 2048
        dim: int = 128
        scale_init: float = 0.05
        bos_id: int = -1  # >= 0: no pair across a document boundary

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        self.table = nn.Parameter(torch.zeros(cfg.buckets, cfg.dim))
        self.proj = Linear(cfg.dim, model_cfg.model_dim)
        nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(float(cfg.scale_init)))

    def parameter_role(self, param_name):
        return "table" if param_name == "table" else "scalar"

    def embed(self, x, ctx):
        h = bigram_buckets(ctx.ids, self.cfg.buckets, self.cfg.bos_id)
        return x + self.scale.to(x.dtype) * self.proj(self.table[h].to(x.dtype))
