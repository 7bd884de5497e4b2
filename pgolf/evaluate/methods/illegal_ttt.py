"""Known-illegal TTT patterns, kept as real opt-in methods so the audit can be shown to catch them
(docs/techniques.md). NOT LEGAL: each trains on validation tokens before they are scored.

- `illegal-prequant-ttt` (#1488 and others): fine-tune on *all* validation tokens for several
  epochs, then score. Here it runs on the loaded (already quantized-then-decoded) weights.
- `illegal-train-then-score-ttt` (#1207's `do_score_first_ttt`, despite its name): train chunk by
  chunk over the whole stream first, score afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgolf.config import choice
from pgolf.evaluate.methods.adaptation import OPTIMIZERS
from pgolf.evaluate.methods.base import register
from pgolf.evaluate.methods.ttt import ChunkTrainer, TTTOptions


@dataclass
class PrequantOptions(TTTOptions):
    optimizer: str = choice("adamw", OPTIMIZERS)
    lr: float = 4.5e-4
    lr_final: float = 4.5e-5
    epochs: int = 10
    freeze_first_blocks: int = 1


@register
class IllegalPrequantTTT(ChunkTrainer):
    name = "illegal-prequant-ttt"
    role = "prepare"
    section = "prequant_ttt"
    Options = PrequantOptions
    why_illegal = "trains on every validation token (several epochs) before any of them is scored"

    def prepare(self, model) -> None:
        n = self.ctx.tokens.size - 1
        for e in range(self.cfg.epochs):  # one pass per epoch, lr cosine from lr to lr_final across them
            self.train_span(model, 0, n, e, self.cfg.epochs, used_from=0, epochs=1,
                            lr_floor=self.cfg.lr_final / self.cfg.lr)


@register
class IllegalTrainThenScoreTTT(ChunkTrainer):
    name = "illegal-train-then-score-ttt"
    role = "prepare"
    why_illegal = "adapts on every chunk of the stream before the scoring pass starts"

    def prepare(self, model) -> None:
        n = self.ctx.tokens.size - 1
        c = self.cfg.chunk_tokens
        chunks = (n + c - 1) // c
        for k in range(chunks):
            self.train_span(model, k * c, min((k + 1) * c, n), k, chunks, used_from=0)
