"""`standard`: the contest's `eval_val` — non-overlapping windows of seq_len (docs/techniques.md)."""

from __future__ import annotations

from dataclasses import dataclass

from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.evaluate.windows import Window, standard_windows


@dataclass
class StandardOptions:
    seq_len: int = 0  # 0 = the preset's eval.seq_len
    batch_windows: int = 64


@register
class Standard(EvalMethod):
    name = "standard"
    role = "windows"
    section = "standard"
    Options = StandardOptions

    def windows(self, n_tokens: int) -> list[Window]:
        return standard_windows(n_tokens, self.ctx.seq_len)
