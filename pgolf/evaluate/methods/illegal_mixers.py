"""Known-illegal n-gram mixers, real opt-in methods so the audit can be shown to catch them
(docs/techniques.md). NOT LEGAL: what they score is not a probability from a normalized
distribution over the vocabulary. Both update their tables only after a chunk is scored, so
only the normalization check can catch them — which is the point.

- `illegal-ngram-target-key` (PR #779 family): a hashed cache whose key contains the *target*,
  p(v) = (n[h(c1, v)] + a) / (n[c1] + a); each candidate reads its own bucket, so Σ_v p(v) ≫ 1.
- `illegal-target-only-norm` (PR #886's pattern): mixes the neural probability with a cache score
  that is scaled by its maximum, then divides by the mixing weights only — a "normalization"
  that looks at the target and never at the other vocabulary entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pgolf.evaluate.methods.base import EvalMethod, register


@dataclass
class IllegalMixOptions:
    chunk_tokens: int = 32_768
    buckets: int = 16_384
    alpha: float = 0.3  # weight of the cache expert
    smoothing: float = 0.1


class CountingMixer(EvalMethod):
    role = "mix"
    Options = IllegalMixOptions

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        V, dev = ctx.preset.model.vocab_size, ctx.runtime.device
        self.V = V
        self.pair = torch.zeros(V, V, dtype=torch.float64, device=dev)
        self.keyed = torch.zeros(self.cfg.buckets, dtype=torch.float64, device=dev)

    @property
    def chunk_tokens(self) -> int:
        return self.cfg.chunk_tokens

    def cache_values(self, inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def distribution(self, logits, inputs, positions) -> torch.Tensor:
        p0 = torch.softmax(logits.double(), dim=-1)
        return (1 - self.cfg.alpha) * p0 + self.cfg.alpha * self.cache_values(inputs.long())

    def score(self, logits, inputs, targets, positions) -> torch.Tensor:
        full = self.distribution(logits, inputs, positions)
        return -torch.log(full.gather(1, targets.long()[:, None]).squeeze(1))

    def count(self, lo: int, hi: int) -> None:
        """Add the targets of positions lo…hi−1 to the tables."""
        tokens = torch.from_numpy(self.ctx.tokens[lo : hi + 1].astype(np.int64)).to(self.pair.device)
        c1, y = tokens[:-1], tokens[1:]
        self.pair.view(-1).index_add_(0, c1 * self.V + y, torch.ones_like(y, dtype=torch.float64))
        self.keyed.index_add_(0, (c1 * 1_000_003 + y) % self.cfg.buckets, torch.ones_like(y, dtype=torch.float64))

    def learn(self, lo: int, hi: int) -> None:
        self.count(lo, hi)
        self.ctx.notify("on_update", method=self.name, state="ngram-tables", spans=[(lo, hi)], used_from=hi)


@register
class TargetKeyedCache(CountingMixer):
    name = "illegal-ngram-target-key"
    section = "illegal_ngram_target_key"
    why_illegal = "its hash key contains the target, so each candidate token reads its own count: Σ_v p(v) ≫ 1"

    def cache_values(self, inputs):
        a = self.cfg.smoothing
        vocab = torch.arange(self.V, device=inputs.device)
        keys = (inputs[:, None] * 1_000_003 + vocab[None, :]) % self.cfg.buckets
        context = self.pair[inputs].sum(-1, keepdim=True)
        return (self.keyed[keys] + a) / (context + a)


@register
class TargetOnlyNormalization(CountingMixer):
    name = "illegal-target-only-norm"
    section = "illegal_target_only_norm"
    why_illegal = "divides by the mixing weights at the target instead of by the sum over the vocabulary"

    def cache_values(self, inputs):
        rows = self.pair[inputs]
        return (rows + self.cfg.smoothing) / (rows.max(-1, keepdim=True).values + self.cfg.smoothing)
