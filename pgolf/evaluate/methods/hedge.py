"""The Hedge mixer of neural + n-gram experts (docs/techniques.md; #700, #731, PR #688).

Experts at a scored position with input c1 = x_t, previous input c2 = x_{t−1}:
  e0 neural softmax(z/τ) (τ = evaluation.temperature, 0.98 in #731; "adaptive" = #700's
     per-token τ = clamp(1 − 0.02·(1 − H/ln V), 0.9, 1.05)); e1 unigram (n(y)+a)/(N+aV);
  e2 dense bigram (n(c1,y)+a)/(n(c1)+aV); e3 hashed trigram, bucket ((36313·c2) XOR (27191·c1))
     mod B, (n(h,y)+s)/(max(n(h),1)+sV);
  e4 — `hedge` (the seeds'): the "entropy expert" exp(−H) given to *every* token, so Σ_y p_mix(y)
     is w0+…+w3 + w4·V·exp(−H) ≫ 1: NOT a probability distribution, kept only to reproduce and
     audit the seeds; `hedge-flattened`: a flattened neural softmax softmax(z/(τ·flatten)), a
     proper distribution, so Σ_y p_mix(y) = 1 — the seeds' mixer with only that fixed. Legal,
     but Hedge then settles on the neural expert and the mixer gains nothing; pgolf's legal
     mixer is `hedge-normalized` (hedge_normalized.py).
Mixture p_mix = Σ_k w_k p_k with w = softmax(log_w), log_w init (2,0,0,0,0); scored nats
−log p_mix(y). Hedge update log_w_k −= η·mean(−log p_k(y)) over scored positions, and counts are
added, only after a chunk has been scored ("deferred", #731; `update = "per-batch"` updates the
weights after every batch of windows instead, on that batch's scored positions — #700 also used
the windows' context positions; we use the scored ones). Neural only until `min_tokens` are
counted. Mixer state is per rank, as in the seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pgolf.config import choice
from pgolf.errors import ConfigError
from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.evaluate.methods.temperature import preset_temperature, tempered_softmax

HASH_A, HASH_B = 36313, 27191


def trigram_bucket(c2, c1, buckets: int):
    """Works on ints, numpy arrays and tensors alike."""
    return ((c2 * HASH_A) ^ (c1 * HASH_B)) % buckets


def hedge_update(log_w: torch.Tensor, expert_nats: torch.Tensor, eta: float) -> torch.Tensor:
    """log_w_k ← log_w_k − η·mean_t(ℓ_{t,k}); expert_nats is (positions, experts)."""
    return log_w - eta * expert_nats.mean(dim=0)


@dataclass
class HedgeOptions:
    eta: float = 0.1
    log_w_init: list[float] = field(default_factory=lambda: [2.0, 0.0, 0.0, 0.0, 0.0])
    update: str = choice("deferred-per-chunk", ("deferred-per-chunk", "per-batch"))
    smoothing: float = 0.1  # unigram/bigram add-a; also the trigram's when trigram_smoothing is 0
    trigram_smoothing: float = 0.0
    trigram_buckets: int = 65_536
    min_tokens: int = 10_000
    flatten: float = 2.0  # hedge-flattened's fifth expert: softmax(z / (τ·flatten))
    chunk_tokens: int = 32_768  # update period when no TTT cuts the stream (TTT's chunks win)


class HedgeBase(EvalMethod):
    role = "mix"

    @property
    def chunk_tokens(self) -> int:
        return self.cfg.chunk_tokens

    Options = HedgeOptions
    section = "hedge"
    normalized: bool

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        cfg, V, dev = self.cfg, ctx.preset.model.vocab_size, ctx.runtime.device
        if len(cfg.log_w_init) != 5:
            raise ConfigError("evaluation.hedge.log_w_init must have 5 entries (neural, uni, bi, tri, fifth)")
        self.V = V
        self.log_w = torch.tensor(cfg.log_w_init, dtype=torch.float64, device=dev)
        self.uni = torch.zeros(V, dtype=torch.float64, device=dev)
        self.bi = torch.zeros(V, V, dtype=torch.float32, device=dev)
        self.tri = torch.zeros(cfg.trigram_buckets, V, dtype=torch.float32, device=dev)
        self.counted = 0
        self.pending: list[torch.Tensor] = []
        self.temperature = preset_temperature(ctx.preset)
        self.mass_samples: list[float] = []

    # -- experts ----------------------------------------------------------------------------
    def _neural(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, _, tau = tempered_softmax(logits, self.temperature)
        return p, tau

    def expert_distributions(self, logits, inputs, positions) -> torch.Tensor:
        """(n, 5, V): each expert's value for every vocabulary entry."""
        cfg, V = self.cfg, self.V
        p0, tau = self._neural(logits)
        a = cfg.smoothing
        s = cfg.trigram_smoothing or cfg.smoothing
        uni = ((self.uni + a) / (self.uni.sum() + a * V)).expand_as(p0)
        c1 = inputs.long()
        prev = np.asarray(self.ctx.tokens[np.maximum(positions - 1, 0)], dtype=np.int64)
        prev[positions == 0] = 0
        c2 = torch.from_numpy(prev).to(c1.device)
        bi_rows = self.bi[c1].double()
        bi = (bi_rows + a) / (bi_rows.sum(-1, keepdim=True) + a * V)
        tri_rows = self.tri[trigram_bucket(c2, c1, cfg.trigram_buckets)].double()
        context = tri_rows.sum(-1, keepdim=True)
        if not self.normalized:  # the seeds clamp n(h) ≥ 1, so an unseen bucket sums to sV/(1+sV) < 1
            context = context.clamp_min(1)
        tri = (tri_rows + s) / (context + s * V)
        fifth = self.fifth_expert(logits, p0, tau)
        return torch.stack([p0, uni, bi, tri, fifth], dim=1)

    def fifth_expert(self, logits, p0, tau) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def warmup_tokens(cls, cfg) -> int:
        return cfg.min_tokens  # neural expert alone until then

    @classmethod
    def window_settings(cls, cfg, window: int, seq_len: int, probe: bool = False) -> dict:
        out = super().window_settings(cfg, window, seq_len, probe)
        if probe:  # mixing must start inside a few hundred targets; fewer buckets only change collisions
            chunk = out.get("chunk_tokens", cfg.chunk_tokens)
            out["min_tokens"] = min(cfg.min_tokens, chunk)
            out["trigram_buckets"] = min(cfg.trigram_buckets, 1024)
        return out

    # -- pipeline hooks ---------------------------------------------------------------------
    def distribution(self, logits, inputs, positions) -> torch.Tensor:
        """The scored "distribution" over the vocabulary (n, V) — sums to 1 only if normalized."""
        if self.counted < self.cfg.min_tokens:
            return self._neural(logits)[0]
        experts = self.expert_distributions(logits, inputs, positions)
        w = torch.softmax(self.log_w, dim=0)
        return (experts * w[None, :, None]).sum(1)

    def score(self, logits, inputs, targets, positions) -> torch.Tensor:
        if self.counted < self.cfg.min_tokens:
            p0 = self._neural(logits)[0]
            return -torch.log(p0.gather(1, targets[:, None].long()).squeeze(1))
        experts = self.expert_distributions(logits, inputs, positions)
        w = torch.softmax(self.log_w, dim=0)
        at_target = experts.gather(2, targets.long()[:, None, None].expand(-1, 5, 1)).squeeze(2)  # (n, 5)
        mix = (at_target * w[None]).sum(1)
        mass = (experts.sum(-1) * w[None]).sum(1)  # Σ_y p_mix(y) at each position
        self.mass_samples.append(float(mass.mean()))
        losses = -torch.log(at_target.clamp_min(1e-300))
        if self.cfg.update == "per-batch":
            self.log_w = hedge_update(self.log_w, losses, self.cfg.eta)
            last = int(positions.max()) + 1
            self.ctx.notify("on_update", method=self.name, state="mixer-weights",
                            spans=[(int(positions.min()), last)], used_from=last)
        else:
            self.pending.append(losses)
        return -torch.log(mix)

    def learn(self, lo: int, hi: int) -> None:
        if self.pending:
            self.log_w = hedge_update(self.log_w, torch.cat(self.pending), self.cfg.eta)
            self.pending = []
        tokens = torch.from_numpy(self.ctx.tokens[lo : hi + 1].astype(np.int64)).to(self.uni.device)
        c1, y = tokens[:-1], tokens[1:]
        c2 = torch.zeros_like(c1)  # x_{p−1} for target positions p = lo…hi−1 (0 before the stream)
        c2[1:] = c1[:-1]
        if lo > 0:
            c2[0] = int(self.ctx.tokens[lo - 1])
        self.uni.index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
        self.bi.view(-1).index_add_(0, c1 * self.V + y, torch.ones_like(y, dtype=torch.float32))
        bucket = trigram_bucket(c2, c1, self.cfg.trigram_buckets)
        self.tri.view(-1).index_add_(0, bucket * self.V + y, torch.ones_like(y, dtype=torch.float32))
        self.counted += int(y.numel())
        self.ctx.notify("on_update", method=self.name, state="ngram-tables+weights", spans=[(lo, hi)],
                        used_from=hi)

    def describe(self) -> dict:
        out = super().describe()
        out["final_weights"] = [round(v, 6) for v in torch.softmax(self.log_w, 0).tolist()]
        if self.mass_samples:
            out["sum_p_mix_mean"] = float(np.mean(self.mass_samples))
            out["sum_p_mix_max"] = float(np.max(self.mass_samples))
        return out


@register
class SeedHedge(HedgeBase):
    name = "hedge"
    normalized = False
    why_illegal = ("the 'entropy expert' exp(−H) is given to every vocabulary entry, so the mixture sums "
                   "to far more than 1 and the scored value is not a log-probability")

    def fifth_expert(self, logits, p0, tau) -> torch.Tensor:
        entropy = -(p0 * torch.log(p0.clamp_min(1e-300))).sum(-1, keepdim=True)
        return torch.exp(-entropy).expand_as(p0)


@register
class FlattenedHedge(HedgeBase):
    name = "hedge-flattened"
    normalized = True

    def fifth_expert(self, logits, p0, tau) -> torch.Tensor:
        return torch.softmax(logits.double() / (tau * self.cfg.flatten), dim=-1)
