"""`phased`: phased score-first TTT — global SGD on the documents already scored (docs/techniques.md, F2/F3).

The stream is cut at `phases` document boundaries: the ends of the first ⌈k·P/phases⌉ documents,
k = 1…phases, P = `prefix_docs` (or, with `prefix_tokens` > 0, the first document starts at or
after k·prefix_tokens/phases — what the audit uses on its short window). When scoring reaches a
boundary, every document before it has been scored; the base model then takes a full-parameter
SGD pass over all of them (cumulative: phase k re-trains on phases 1…k), `chunk_tokens` per step,
momentum, gradient clipping, LR cosine from `lr` to 0 over the pass's steps; then scoring resumes
on the documents after the boundary with the updated weights. With `lora-ttt` the adapters are
rebuilt after each phase. Documents are in stream order, so a phase's documents are exactly the
stream's prefix up to its boundary (the record's longest-first queue made its prefix the longest
documents instead; see doc-sliding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pgolf.evaluate.methods.adaptation import make_optimizer, train_on_span, trainable_parameters
from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.evaluate.windows import document_starts


@dataclass
class PhasedOptions:
    phases: int = 3
    prefix_docs: int = 2500
    prefix_tokens: int = 0  # > 0: boundaries by tokens (at the next document start) instead of documents
    bos_id: int = 1
    lr: float = 0.001
    momentum: float = 0.9
    epochs: int = 1
    chunk_tokens: int = 32_768  # tokens per SGD step
    seq_len: int = 0  # 0 = the evaluation's seq_len
    grad_clip: float = 1.0


def cosine(lr: float, i: int, n: int) -> float:
    return lr * 0.5 * (1 + np.cos(np.pi * i / max(n, 1)))


@register
class PhasedTTT(EvalMethod):
    name = "phased"
    role = "adapt"
    section = "phased"
    Options = PhasedOptions

    @property
    def chunk_tokens(self) -> int:
        return self.cfg.chunk_tokens

    def cuts(self, n_targets: int) -> list[int]:
        """The phase boundaries: starts of the first document after each phase (target positions)."""
        starts = document_starts(self.ctx.tokens[:n_targets], self.cfg.bos_id)
        k = np.arange(1, self.cfg.phases + 1)
        if self.cfg.prefix_tokens > 0:
            marks = k * self.cfg.prefix_tokens // self.cfg.phases
            idx = np.searchsorted(starts, marks, side="left")
        else:
            idx = -(-k * self.cfg.prefix_docs // self.cfg.phases)  # ceil
        return sorted({int(starts[i]) for i in idx if 0 < i < starts.size})

    @classmethod
    def window_settings(cls, cfg, window: int, seq_len: int, probe: bool = False) -> dict:
        """All phases inside the window: boundaries by tokens over its first three quarters."""
        out = {"prefix_tokens": window * 3 // 4, "prefix_docs": 0}
        if cfg.chunk_tokens > window // 4:
            out["chunk_tokens"] = max(window // 4, 16)
        if (cfg.seq_len or seq_len) > out.get("chunk_tokens", cfg.chunk_tokens) // 2:
            out["seq_len"] = max(out.get("chunk_tokens", cfg.chunk_tokens) // 2, 8)
        return out

    def setup(self, model) -> None:
        if getattr(self, "_params", None) is None:
            self._params = [p for _, p in trainable_parameters(model)]
            self._opt = make_optimizer(self._params, "sgd", self.cfg.lr, self.cfg.momentum, [0.9, 0.999], 0.0)
            self.steps = 0
            self.phases_done = 0

    def after_chunk(self, model, lo: int, hi: int, k: int, n_chunks: int) -> None:
        """Targets 0…hi−1 (every document before the boundary) are scored: train on all of them."""
        self.setup(model)
        for p in self._params:
            p.requires_grad_(True)
        seq = self.cfg.seq_len or self.ctx.seq_len
        step_tokens = max(self.cfg.chunk_tokens // seq, 1) * seq
        spans = [(a, min(a + step_tokens, hi)) for a in range(0, hi, step_tokens)]
        total = len(spans) * self.cfg.epochs
        i = 0
        for _ in range(self.cfg.epochs):
            for a, b in spans:
                self.steps += train_on_span(model, self.ctx.tokens, a, b, seq, self._params, self._opt,
                                            cosine(self.cfg.lr, i, total), 1, step_tokens // seq, self.cfg.grad_clip,
                                            self.ctx.runtime)
                i += 1
        self.phases_done += 1
        self.ctx.notify("on_update", method=self.name, state="weights", spans=[(0, hi)], used_from=hi)

    def describe(self) -> dict:
        out = super().describe()
        if getattr(self, "_params", None) is not None:
            out["steps"] = self.steps
            out["phases_done"] = self.phases_done
        return out
