"""Partial RoPE (PR #315): rotate only the first `dims` of each q/k head (pairs (i, i + dims/2)),
leaving the other dims position-free.

`ntk_train_seq_len` reproduces what the #549/#1313/#1488/#731/#700 code did: it builds the rotary
with train_seq_len=1024 while training at T=2048, so the NTK-scaled base
10000·(2048/1024)^(16/14) ≈ 22,080 is used in training and evaluation alike (docs/techniques.md).
Set it to 0 for a plain base.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgolf.model.addons.base import ADDONS, AddOn
from pgolf.model.blocks import Rotary


@ADDONS.register("partial_rope")
class PartialRope(AddOn):
    @dataclass
    class Options:
        dims: int = 16
        ntk_train_seq_len: int = 0

    def make_rotary(self, head_dim, base):
        return Rotary(head_dim, base, dims=self.cfg.dims, ntk_train_seq_len=self.cfg.ntk_train_seq_len)
