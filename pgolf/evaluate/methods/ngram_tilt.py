"""`ngram-tilt`: the token-only n-gram tilt of the final records (#1514's closed form, as #2018,
#2130, #2135 and #2140 ran it with the target-gated channels off), and its illegal twin.

At target position t a causal token n-gram over the prefix gives a hint h_t (pgolf.evaluate.
ngram_hints: the most frequent continuation of the longest context of orders `min_order` …
`max_order` seen before t). #2135's code (its C helper, `TOKEN_ORDER=16`) keeps one fixed context of
15 tokens with no back-off, so the default is `min_order = max_order = 16`; lower `min_order` for a
backed-off expert. Where the hint followed its context at least `min_count` times and in at least
`min_share` of the context's occurrences (the share in float32, as the record's helper divides), the
model's distribution is tilted towards it in closed form,

    q(v) = p(v) · e^{β·[v = h_t]} / (1 + p(h_t)·(e^β − 1)),

which sums to 1 over the whole alphabet; elsewhere q = p. β = `boost`. Nothing at t reads the
target: the hint and the gate are functions of x_0 … x_t. The hints are computed once for the
whole stream before scoring (inside the evaluation timer, as the records counted it).

`illegal-ngram-tilt-gated` adds a *within-word* channel the way #2140's first logs had the
records' channels on: where the token channel has no hint, it tilts towards its own hint (the
longest context down to order 2 seen before, whatever the token channel's orders) only if the
target continues a word (no leading space, not a boundary token) —
a gate that reads the target, so the candidates' scores no longer come from one distribution
(their exp(−score) sums to more or less than 1). NOT LEGAL; a study fixture the audit must flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pgolf.errors import ConfigError
from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.evaluate.ngram_hints import causal_hints


@dataclass
class NgramTiltOptions:
    max_order: int = 16
    min_order: int = 16  # #2135: one 15-token context, no back-off
    # the tilt applies where the hint followed its context at least `min_count` times and in at
    # least `min_share` of the context's occurrences (#2135: threshold 0.8, boost 2.625, order 16)
    min_count: int = 1
    min_share: float = 0.8
    boost: float = 2.625  # β


@register
class NgramTilt(EvalMethod):
    name = "ngram-tilt"
    role = "mix"
    section = "ngram_tilt"
    Options = NgramTiltOptions

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        cfg = self.cfg
        if not 2 <= cfg.min_order <= cfg.max_order:
            raise ConfigError(f"evaluation.{self.section}: need 2 <= min_order <= max_order, got "
                              f"{cfg.min_order}, {cfg.max_order}")
        if cfg.min_count < 1:
            raise ConfigError(f"evaluation.{self.section}.min_count must be >= 1, got {cfg.min_count}")
        if not 0.0 <= cfg.min_share <= 1.0:
            raise ConfigError(f"evaluation.{self.section}.min_share must be in [0, 1], got {cfg.min_share}")
        self.hints = causal_hints(ctx.tokens, cfg.max_order, cfg.min_order)
        h = self.hints
        # the share as the record's helper computes it: count / total in float32, against a float32 threshold
        share = h.count.astype(np.float32) / np.maximum(h.seen, 1).astype(np.float32)
        gated = (h.token >= 0) & (h.count >= cfg.min_count) & (share >= np.float32(cfg.min_share))
        self.hint = torch.from_numpy(np.where(gated, h.token, -1))
        self.gated_positions = int(gated.sum())

    @property
    def chunk_tokens(self) -> int:
        return 1 << 16  # nothing is learned after a chunk: the hints are all made before scoring

    def _hints(self, positions, device, table: torch.Tensor | None = None) -> torch.Tensor:
        """The gated hints (or another per-position `table`) at `positions`."""
        table = self.hint if table is None else table
        return table[torch.as_tensor(np.asarray(positions), dtype=torch.long)].to(device)

    def _tilt(self, p: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
        """q over the alphabet at each row (rows without a hint: p)."""
        on = hint >= 0
        boost = torch.zeros(p.size(0), dtype=p.dtype, device=p.device)
        boost[on] = self.cfg.boost
        p_hint = torch.where(on, p.gather(1, hint.clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(boost))
        z = 1 + p_hint * torch.expm1(boost)
        q = p / z[:, None]
        rows = torch.nonzero(on).squeeze(1)
        q[rows, hint[rows]] = p[rows, hint[rows]] * math.exp(self.cfg.boost) / z[rows]
        return q

    def _record(self, positions) -> None:
        """Tell the audit: the hint at t holds the targets of the positions before t."""
        if self.ctx.observer is not None:
            for t in np.asarray(positions).tolist():
                self.ctx.notify("on_update", method=self.name, state="ngram-hints", spans=[(0, t)], used_from=t)

    def distribution(self, logits, inputs, positions) -> torch.Tensor:
        p = torch.softmax(logits.double(), dim=-1)
        return self._tilt(p, self._hints(positions, logits.device))

    def score(self, logits, inputs, targets, positions) -> torch.Tensor:
        self._record(positions)
        logp = torch.log_softmax(logits.double(), dim=-1)
        hint = self._hints(positions, logits.device)
        on = hint >= 0
        target_logp = logp.gather(1, targets[:, None].long()).squeeze(1)
        p_hint = torch.where(on, logp.gather(1, hint.clamp(min=0)[:, None]).squeeze(1).exp(),
                             torch.zeros_like(target_logp))
        beta = torch.where(on, torch.full_like(target_logp, self.cfg.boost), torch.zeros_like(target_logp))
        log_z = torch.log1p(p_hint * torch.expm1(beta))
        hit = on & (targets.long() == hint)
        return (-(target_logp + torch.where(hit, beta, torch.zeros_like(beta)) - log_z)).to(logits.dtype)

    def describe(self) -> dict:
        out = super().describe()
        out["gated_positions"] = self.gated_positions
        return out


@register
class TargetGatedNgramTilt(NgramTilt):
    name = "illegal-ngram-tilt-gated"
    section = "illegal_ngram_tilt_gated"
    why_illegal = ("its within-word channel tilts only where the *target* continues a word, so the "
                   "candidates' scores are not one distribution over the alphabet")

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        # the within-word channel's hints: any context down to order 2 seen before (its own threshold, 1)
        cfg = self.cfg
        word = self.hints if cfg.min_order == 2 else causal_hints(ctx.tokens, cfg.max_order, 2)
        self.word_hint = torch.from_numpy(word.token)

    def score(self, logits, inputs, targets, positions) -> torch.Tensor:
        self._record(positions)
        token_hint = self._hints(positions, logits.device)
        word_hint = self._hints(positions, logits.device, self.word_hint)
        t = targets.long()
        tables = self.ctx.tables
        continues_word = ~tables.leading_space.to(t.device)[t] & ~tables.boundary.to(t.device)[t]
        # the token channel where it has a hint; else the within-word channel, read off the target
        hint = torch.where(token_hint >= 0, token_hint, torch.where(continues_word, word_hint, -1))
        q = self._tilt(torch.softmax(logits.double(), dim=-1), hint)
        return (-torch.log(q.gather(1, t[:, None]).squeeze(1))).to(logits.dtype)
