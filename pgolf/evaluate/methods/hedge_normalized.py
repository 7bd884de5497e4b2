"""`hedge-normalized`: the legal mixer of the neural model and an online n-gram model.

docs/legality.md admits "n-gram experts built only from already-scored tokens and mixed as proper
distributions". Both experts are distributions over the whole vocabulary at every position:

- neural: softmax(z/τ) (τ = evaluation.temperature, or "adaptive" as in #700);
- n-gram: pgolf.evaluate.ngram's interpolated ladder of orders 1…`order`. Position t counts the
  targets of every position before t: the tables hold the chunks already scored, and inside the
  current chunk the positions before t are counted on the fly. So each token counts from the
  position right after it (the seeds counted per chunk and missed repetitions inside a chunk).

The mixture is p = λ_t·p_neural + (1 − λ_t)·p_ngram, so Σ_y p(y) = 1. The weight
λ_t = σ(w·f_t) reads features of the past and of the model's own distribution, never of the
target: f_t = [1, H_t/ln V, log(1 + n(c_k))/5 for k = 2…order] (H_t the neural entropy, n(c_k)
how often the order-k context was seen). w starts at logit(`lambda_init`) for the bias and 0
elsewhere, and is fitted after each chunk has been scored: `gate_steps` Adam steps on the
mixture's log-loss over that chunk's scored positions, with gradients summed over ranks so
every rank keeps the same w.

Why not the seeds' Hedge rule: Hedge moves weight by each expert's *own* loss, so it converges
on the single best expert (the neural one: 0.995–0.99999 on the cpu-mini benchmark) and never
finds the mixture's optimum; a gradient on the mixture's loss does. The seeds' expert set with
only the entropy expert replaced is kept as `hedge-flattened` for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pgolf.errors import ConfigError
from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.evaluate.methods.temperature import preset_temperature, tempered_softmax
from pgolf.evaluate.ngram import OnlineNgram
from pgolf.runtime import all_reduce_sum_


@dataclass
class NgramMixOptions:
    order: int = 5
    unigram_smoothing: float = 0.5  # a
    backoff: float = 1.0  # β: pseudo-count of the next lower order
    lambda_init: float = 0.8
    gate_steps: int = 20
    gate_lr: float = 0.05
    chunk_tokens: int = 4_096  # table commit and gate update period when no TTT cuts the stream
    # > 0: also sum the full mixture over the vocabulary at every n-th position (a brute-force
    # recount of the prefix each time, so off by default; the audit samples on its own)
    mass_every: int = 0


@register
class NormalizedHedge(EvalMethod):
    name = "hedge-normalized"
    role = "mix"
    section = "hedge_normalized"
    Options = NgramMixOptions

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        cfg = self.cfg
        if not 0.0 < cfg.lambda_init < 1.0:
            raise ConfigError(f"evaluation.hedge_normalized.lambda_init must be in (0, 1), got {cfg.lambda_init}")
        if cfg.order < 1:
            raise ConfigError(f"evaluation.hedge_normalized.order must be ≥ 1, got {cfg.order}")
        self.V = ctx.preset.model.vocab_size
        self.ngram = OnlineNgram(ctx.tokens, self.V, cfg.order, cfg.unigram_smoothing, cfg.backoff)
        n_features = 2 + (cfg.order - 1)
        self.w = torch.zeros(n_features, dtype=torch.float64)
        self.w[0] = math.log(cfg.lambda_init / (1 - cfg.lambda_init))
        self.w.requires_grad_(True)
        self.opt = torch.optim.Adam([self.w], lr=cfg.gate_lr)
        self.pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.temperature = preset_temperature(ctx.preset)
        self.lambdas: list[float] = []
        self.mass_samples: list[float] = []

    @property
    def chunk_tokens(self) -> int:
        return self.cfg.chunk_tokens

    # -- experts and gate ---------------------------------------------------------------------
    def _neural(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, entropy, _ = tempered_softmax(logits, self.temperature)
        return p, entropy

    def _features(self, entropy: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
        self.ngram.extend_to(int(positions.max()) + 1)
        counts = torch.from_numpy(self.ngram.context_counts[:, positions].T.copy())
        cols = [torch.ones_like(entropy.cpu()), entropy.cpu() / math.log(self.V), torch.log1p(counts) / 5]
        return torch.cat([c.reshape(len(positions), -1) for c in cols], dim=1)

    def _lambda(self, features: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(features @ self.w)

    # -- pipeline hooks -------------------------------------------------------------------------
    def distribution(self, logits, inputs, positions) -> torch.Tensor:
        p_neural, entropy = self._neural(logits)
        lam = self._lambda(self._features(entropy, positions)).to(p_neural.device)[:, None]
        p_ngram = torch.from_numpy(np.stack([self.ngram.full_distribution(int(t)) for t in positions]))
        return lam * p_neural + (1 - lam) * p_ngram.to(p_neural.device)

    def score(self, logits, inputs, targets, positions) -> torch.Tensor:
        p_neural, entropy = self._neural(logits)
        features = self._features(entropy, positions)
        p_nn = p_neural.gather(1, targets[:, None].long()).squeeze(1).cpu()
        p_ng = torch.from_numpy(self.ngram.prob[positions].copy())
        lam = self._lambda(features)
        self.lambdas.append(float(lam.mean()))
        if self.cfg.mass_every > 0:  # Σ_y p(y) at sampled positions, reported like the seeds' hedge
            rows = np.nonzero(positions % self.cfg.mass_every == 0)[0]
            if rows.size:
                idx = torch.as_tensor(rows, device=logits.device)
                full = self.distribution(logits[idx], inputs[idx], positions[rows])
                self.mass_samples.extend(full.sum(-1).tolist())
        self.pending.append((features, p_nn, p_ng))
        if self.ctx.observer is not None:  # the counts behind position t hold the targets of positions < t
            for t in positions.tolist():
                self.ctx.notify("on_update", method=self.name, state="ngram-counts", spans=[(0, t)], used_from=t)
        return -torch.log(lam * p_nn + (1 - lam) * p_ng).to(logits.device)

    def learn(self, lo: int, hi: int) -> None:
        """Commit the chunk's targets to the n-gram tables and fit the gate on its scored positions
        (all ranks')."""
        self.ngram.commit(hi)
        if self.pending:
            features, p_nn, p_ng = (torch.cat(parts) for parts in zip(*self.pending))
        else:
            features = torch.zeros(0, self.w.numel(), dtype=torch.float64)
            p_nn = p_ng = torch.zeros(0, dtype=torch.float64)
        self.pending = []
        count = torch.tensor([float(p_nn.numel())], dtype=torch.float64, device=self.ctx.runtime.device)
        all_reduce_sum_(count, self.ctx.runtime)
        if count.item() == 0:
            return
        for _ in range(self.cfg.gate_steps):
            lam = torch.sigmoid(features @ self.w)
            loss = -torch.log(lam * p_nn + (1 - lam) * p_ng).sum()
            grad, = torch.autograd.grad(loss, self.w)
            grad = grad.to(self.ctx.runtime.device)
            all_reduce_sum_(grad, self.ctx.runtime)  # every rank takes the same step
            self.w.grad = (grad / count).cpu()
            self.opt.step()
        self.ctx.notify("on_update", method=self.name, state="mixer-gate", spans=[(lo, hi)], used_from=hi)

    def describe(self) -> dict:
        out = super().describe()
        out["gate_weights"] = [round(v, 4) for v in self.w.detach().tolist()]
        if self.lambdas:
            out["mean_lambda_neural"] = float(np.mean(self.lambdas))
        if self.mass_samples:
            out["sum_p_mix_mean"] = float(np.mean(self.mass_samples))
            out["sum_p_mix_max"] = float(np.max(self.mass_samples))
        return out
