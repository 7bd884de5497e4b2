"""Illegal fixtures built to slip past a weaker audit, each caught by a different check.
NOT LEGAL; opt-in study methods that never enter a submission.

- `illegal-late-unnormalized` (a): a neural + bigram mixer that is a proper distribution for
  its first `start_tokens` positions and drops the bigram's normalizer after them. Starts past
  any audit window: the whole-evaluation normalization samples catch it.
- `illegal-late-train-first-ttt` (b): score-first TTT for `honest_chunks` chunks, then it also
  trains on the next chunk before scoring it.
- `illegal-late-peek` (c): a normalized mixer that, from `start_tokens` on, counts each next
  chunk before scoring it — only after the audit's window, so only the whole-evaluation
  score-before-adapt record catches it.
- `illegal-misreported-mixer` (d): `distribution()` hands the audit the neural softmax while
  `score` uses an unnormalized mixture; only checks that do not take the method's word (the
  black-box probe, and the score-vs-distribution comparison) catch it.
- `illegal-byte-ppm` (e): a byte-level model (orders 0–1, interpolated) built from the bytes of
  scored tokens, spread onto tokens as the contest's excluded PPM submissions did: a token's
  probability is the product of its bytes' probabilities, which does not sum to 1 over the
  token alphabet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.evaluate.methods.illegal_mixers import CountingMixer, IllegalMixOptions
from pgolf.evaluate.methods.ttt import ScoreFirstTTT, TTTOptions


@dataclass
class LateOptions(IllegalMixOptions):
    start_tokens: int = 16_384  # positions before this are treated honestly


class BigramMixer(CountingMixer):
    """(1 − α)·softmax + α·bigram, with the bigram's counts committed after each scored chunk."""

    Options = LateOptions

    def bigram(self, inputs: torch.Tensor, normalized=True) -> torch.Tensor:
        """`normalized`: True, False, or per row (a bool array)."""
        rows = self.pair[inputs]
        a = self.cfg.smoothing
        norm = rows.sum(-1, keepdim=True) + a * self.V
        if normalized is not True:  # without the a·V term the row sums to more than 1
            cheat = rows.sum(-1, keepdim=True) + a
            keep = torch.as_tensor(normalized, device=rows.device).expand(rows.size(0))
            norm = torch.where(keep[:, None], norm, cheat)
        return (rows + a) / norm

    def cache_values(self, inputs):
        return self.bigram(inputs)


@register
class LateUnnormalized(BigramMixer):
    name = "illegal-late-unnormalized"
    section = "illegal_late_unnormalized"
    why_illegal = "from start_tokens on its bigram expert is not normalized: Σ_v p(v) > 1"

    def distribution(self, logits, inputs, positions) -> torch.Tensor:
        p0 = torch.softmax(logits.double(), dim=-1)
        honest = np.asarray(positions) < self.cfg.start_tokens
        return (1 - self.cfg.alpha) * p0 + self.cfg.alpha * self.bigram(inputs.long(), honest)


@register
class LatePeek(BigramMixer):
    name = "illegal-late-peek"
    section = "illegal_late_peek"
    why_illegal = "from start_tokens on it counts each next chunk's targets before scoring them"

    def learn(self, lo: int, hi: int) -> None:
        super().learn(lo, hi)
        n = self.ctx.tokens.size - 1
        if hi >= self.cfg.start_tokens and hi < n:
            nxt = min(hi + self.cfg.chunk_tokens, n)
            self.count(hi, nxt)  # the next chunk, before it is scored (counted again once it is)
            self.ctx.notify("on_update", method=self.name, state="ngram-tables (peeked)", spans=[(hi, nxt)],
                            used_from=hi)


@register
class MisreportedMixer(BigramMixer):
    name = "illegal-misreported-mixer"
    section = "illegal_misreported_mixer"
    why_illegal = "reports the neural softmax as its distribution but scores an unnormalized mixture"

    def distribution(self, logits, inputs, positions) -> torch.Tensor:
        return torch.softmax(logits.double(), dim=-1)

    def score(self, logits, inputs, targets, positions) -> torch.Tensor:
        p0 = torch.softmax(logits.double(), dim=-1)
        full = (1 - self.cfg.alpha) * p0 + self.cfg.alpha * self.bigram(inputs.long(), normalized=False)
        return -torch.log(full.gather(1, targets.long()[:, None]).squeeze(1))


@dataclass
class LateTTTOptions(TTTOptions):
    honest_chunks: int = 2


@register
class LateTrainFirstTTT(ScoreFirstTTT):
    name = "illegal-late-train-first-ttt"
    section = "illegal_late_ttt"
    Options = LateTTTOptions
    why_illegal = "after honest_chunks chunks it trains on each next chunk before scoring it"

    def after_chunk(self, model, lo: int, hi: int, k: int, n_chunks: int) -> None:
        super().after_chunk(model, lo, hi, k, n_chunks)
        if k + 1 >= self.cfg.honest_chunks and k + 1 < n_chunks:
            nxt = min(hi + self.cfg.chunk_tokens, self.ctx.tokens.size - 1)
            self.train_span(model, hi, nxt, k, n_chunks, used_from=hi)


@dataclass
class BytePPMOptions:
    chunk_tokens: int = 4_096
    alpha: float = 0.3
    backoff: float = 2.0  # pseudo-count of the order-0 byte model inside the order-1 one
    max_token_bytes: int = 16


@register
class BytePPM(EvalMethod):
    name = "illegal-byte-ppm"
    role = "mix"
    section = "illegal_byte_ppm"
    Options = BytePPMOptions
    why_illegal = ("a token's probability is the product of byte probabilities, which does not sum to 1 over "
                   "the token alphabet (the contest's ruling on byte-level PPM mixtures)")

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        self.V = V = ctx.preset.model.vocab_size
        L = self.cfg.max_token_bytes
        spellings = ctx.tables.spellings or self.synthetic_spellings(ctx.tables.base_bytes.cpu().numpy())
        self.spell = np.full((V, L), -1, dtype=np.int64)  # byte ids, −1 = past the end
        for v, word in enumerate(spellings[:V]):
            word = word[:L]
            self.spell[v, : len(word)] = list(word)
        self.lengths = (self.spell >= 0).sum(1)
        self.order1 = np.zeros((257, 256))  # row 256: no previous byte
        self.order0 = np.zeros(256)

    @property
    def chunk_tokens(self) -> int:
        return self.cfg.chunk_tokens

    @staticmethod
    def synthetic_spellings(lengths: np.ndarray) -> list[bytes]:
        """Byte strings of the given lengths (for byte tables without a tokenizer, e.g. in tests)."""
        return [bytes((v * 37 + 11 * i) % 256 for i in range(int(n))) for v, n in enumerate(lengths)]

    def last_byte(self, ids: np.ndarray) -> np.ndarray:
        """The last byte of each token's spelling (256 when it has none)."""
        return np.where(self.lengths[ids] > 0, self.spell[ids, np.maximum(self.lengths[ids] - 1, 0)], 256)

    def token_probs(self, inputs: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(n, K): Π_j p(b_j | b_{j−1}) over the bytes of each candidate token, starting after the
        input token's last byte; p(b | a) interpolates the order-1 counts with the order-0 model."""
        p0 = (self.order0 + 1) / (self.order0.sum() + 256)
        P = (self.order1 + self.cfg.backoff * p0) / (self.order1.sum(1, keepdims=True) + self.cfg.backoff)
        cand = candidates.cpu().numpy()
        word = self.spell[cand]  # (n, K, L)
        first = np.broadcast_to(self.last_byte(inputs.cpu().numpy())[:, None, None], word.shape[:2] + (1,))
        prev = np.concatenate([first, np.where(word[..., :-1] >= 0, word[..., :-1], 256)], axis=2)
        probs = np.where(word >= 0, P[prev, np.maximum(word, 0)], 1.0).prod(-1)
        probs[self.lengths[cand] == 0] = 0.0  # ids without bytes (control, unknown)
        return torch.from_numpy(probs).to(inputs.device)

    def distribution(self, logits, inputs, positions) -> torch.Tensor:
        p0 = torch.softmax(logits.double(), dim=-1)
        every = torch.arange(self.V, device=logits.device).expand(len(inputs), -1)
        return (1 - self.cfg.alpha) * p0 + self.cfg.alpha * self.token_probs(inputs.long(), every)

    def score(self, logits, inputs, targets, positions) -> torch.Tensor:
        p0 = torch.softmax(logits.double(), dim=-1).gather(1, targets.long()[:, None]).squeeze(1)
        ppm = self.token_probs(inputs.long(), targets.long()[:, None]).squeeze(1)
        return -torch.log((1 - self.cfg.alpha) * p0 + self.cfg.alpha * ppm)

    def learn(self, lo: int, hi: int) -> None:
        ids = np.asarray(self.ctx.tokens[lo : hi + 1], dtype=np.int64)  # ids[1:] are the chunk's targets
        words = [self.spell[v, : self.lengths[v]] for v in ids[1:]]
        data = np.concatenate(words) if words else np.zeros(0, np.int64)
        if data.size:
            prev = np.r_[self.last_byte(ids[:1])[0], data[:-1]]
            np.add.at(self.order1, (prev, data), 1)
            np.add.at(self.order0, data, 1)
        self.ctx.notify("on_update", method=self.name, state="byte-counts", spans=[(lo, hi)], used_from=hi)
