"""`sliding`: overlapping windows advancing by `stride`; each target scored once with ≥ T−S
tokens of context (docs/techniques.md). `legacy_tail` reproduces the records' loop, which
re-scores the stream's final targets in every tail window (its bpb differs by ~3e-5 of weight)."""

from __future__ import annotations

from dataclasses import dataclass

from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.evaluate.windows import Window, sliding_windows


@dataclass
class SlidingOptions:
    seq_len: int = 0  # 0 = the preset's eval.seq_len
    stride: int = 64
    batch_windows: int = 32
    legacy_tail: bool = False


@register
class Sliding(EvalMethod):
    name = "sliding"
    role = "windows"
    section = "sliding"
    Options = SlidingOptions

    def windows(self, n_tokens: int) -> list[Window]:
        return sliding_windows(n_tokens, self.ctx.seq_len, self.cfg.stride, self.cfg.legacy_tail)
