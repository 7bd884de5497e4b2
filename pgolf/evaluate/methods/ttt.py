"""`ttt`: score-first test-time training (docs/techniques.md; SGD #549, AdamW + Polyak #700/#731).

The stream is cut into chunks of `chunk_tokens` targets. The pipeline scores all of chunk k with
the current weights (no gradient) and only then calls `after_chunk`, which trains on chunk k's
tokens; chunk k+1 is therefore scored by weights adapted on chunks 0…k only, and the last chunk
is never trained on. With `polyak_decay > 0` a Polyak/EMA copy of the adapted weights is swapped
in for scoring (#606 recipe). `byte_weighted`: "" (plain mean), "exact" (bpb byte counts, #700)
or "base_bytes" (mean-normalised base bytes, #731).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from pgolf.config import choice
from pgolf.evaluate.methods.adaptation import (LR_SCHEDULES, OPTIMIZERS, chunk_lr, make_optimizer, train_on_span,
                                               trainable_parameters)
from pgolf.evaluate.methods.base import EvalMethod, register


@dataclass
class TTTOptions:
    chunk_tokens: int = 32_768
    optimizer: str = choice("sgd", OPTIMIZERS)
    lr: float = 0.002
    momentum: float = 0.9
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    epochs: int = 3
    batch_seqs: int = 32
    seq_len: int = 0  # 0 = the evaluation's seq_len
    freeze_first_blocks: int = 0
    train_last_blocks: int = 0
    train_name_patterns: list[str] = field(default_factory=list)
    lr_schedule: str = choice("cosine", LR_SCHEDULES)
    lr_floor: float = 0.0
    grad_clip: float = 1.0
    polyak_decay: float = 0.0
    byte_weighted: str = choice("", ("", "exact", "base_bytes"))


class ChunkTrainer(EvalMethod):
    """Adapts the model on a span of the stream; shared by `ttt` and the illegal fixtures."""

    Options = TTTOptions
    section = "ttt"

    def setup(self, model: torch.nn.Module) -> None:
        if getattr(self, "_params", None) is not None:
            return
        chosen = trainable_parameters(model, self.cfg.freeze_first_blocks, self.cfg.train_last_blocks,
                                      self.cfg.train_name_patterns)
        self._names = [n for n, _ in chosen]
        self._params = [p for _, p in chosen]
        chosen_ids = {id(p) for p in self._params}
        for p in model.parameters():
            p.requires_grad_(id(p) in chosen_ids)
        self._opt = make_optimizer(self._params, self.cfg.optimizer, self.cfg.lr, self.cfg.momentum,
                                   self.cfg.betas, self.cfg.weight_decay)
        self._polyak = [p.detach().clone() for p in self._params] if self.cfg.polyak_decay > 0 else None
        self.steps = 0

    @classmethod
    def window_settings(cls, cfg, window: int, seq_len: int, probe: bool = False) -> dict:
        out = super().window_settings(cfg, window, seq_len, probe)
        chunk = out.get("chunk_tokens", cfg.chunk_tokens)
        if (cfg.seq_len or seq_len) > chunk // 2:  # TTT trains on whole sequences: two per chunk
            out["seq_len"] = max(chunk // 2, 8)
        return out

    def train_span(self, model, lo: int, hi: int, k: int, n_chunks: int, used_from: int | None = None,
                   epochs: int | None = None, lr_floor: float | None = None) -> None:
        """Train on targets lo..hi−1 (`epochs`, `lr_floor` default to the options); the adapted
        weights score positions ≥ used_from (default hi)."""
        self.setup(model)
        lr = chunk_lr(self.cfg.lr, k, n_chunks, self.cfg.lr_schedule,
                      self.cfg.lr_floor if lr_floor is None else lr_floor)

        def polyak_update() -> None:
            if self._polyak is not None:
                torch._foreach_lerp_(self._polyak, [p.detach() for p in self._params], 1 - self.cfg.polyak_decay)

        self.steps += train_on_span(model, self.ctx.tokens, lo, hi, self.cfg.seq_len or self.ctx.seq_len,
                                    self._params, self._opt, lr, epochs or self.cfg.epochs, self.cfg.batch_seqs,
                                    self.cfg.grad_clip, self.ctx.runtime, self.ctx.tables, self.cfg.byte_weighted,
                                    after_step=polyak_update)
        self.ctx.notify("on_update", method=self.name, state="weights", spans=[(lo, hi)],
                        used_from=hi if used_from is None else used_from)

    @contextlib.contextmanager
    def scoring_weights(self, model: torch.nn.Module):
        """Score with the Polyak copy when there is one; train with the raw weights."""
        if getattr(self, "_polyak", None) is None:
            yield
            return
        raw = [p.detach().clone() for p in self._params]
        with torch.no_grad():
            for p, avg in zip(self._params, self._polyak):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self._params, raw):
                    p.copy_(r)

    def describe(self) -> dict:
        out = super().describe()
        if getattr(self, "_params", None) is not None:
            out["trainable_params"] = sum(p.numel() for p in self._params)
            out["steps"] = self.steps
        return out


@register
class ScoreFirstTTT(ChunkTrainer):
    name = "ttt"
    role = "adapt"

    @property
    def chunk_tokens(self) -> int:
        return self.cfg.chunk_tokens

    def after_chunk(self, model, lo: int, hi: int, k: int, n_chunks: int) -> None:
        # lo..hi−1 are this chunk's targets, all scored already (the pipeline guarantees it).
        self.train_span(model, lo, hi, k, n_chunks)
