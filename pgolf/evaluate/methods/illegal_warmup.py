"""ILLEGAL by design: a LoRA-TTT whose compile warm-up trains on validation tokens (study fixture).

#1530's first version warmed its compiled LoRA-TTT step up by running backward and optimizer steps
on real validation tokens before the evaluation loop, flagged in the contest as the "trains on
what it will score" pattern; later records warm up on random tokens. Here the warm-up takes
`warmup_steps` steps on the first `warmup_tokens` validation targets and, as a warm-started A does,
keeps A and its optimizer state (only B is reset), so what it learned from not-yet-scored tokens
reaches their scores. It reports that update like any other; the audit flags it in score before
adapt (and future invariance, when a cut point falls inside the warm-up span).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pgolf.evaluate.methods.base import register
from pgolf.evaluate.methods.lora_ttt import LoraTTT, LoraTTTOptions


@dataclass
class ValWarmupOptions(LoraTTTOptions):
    warmup_tokens: int = 2048


@register
class ValWarmupLoraTTT(LoraTTT):
    name = "illegal-val-warmup-lora-ttt"
    section = "illegal_val_warmup"
    Options = ValWarmupOptions
    why_illegal = ("its warm-up runs backward and optimizer steps on validation tokens before they are "
                   "scored, and the adapters keep what they learned")

    def warmup(self, model) -> None:
        self._build(model)
        seq = self.ctx.seq_len
        span = min(self.cfg.warmup_tokens, self.ctx.tokens.size - 1) // seq * seq
        if span == 0 or self.cfg.warmup_steps <= 0:
            return
        stream = torch.from_numpy(self.ctx.tokens[: span + 1].astype(np.int64)).to(self.ctx.runtime.device)
        x, y = stream[:-1].view(-1, seq)[: self.n_slots], stream[1:].view(-1, seq)[: self.n_slots]
        n = x.size(0)
        flat = torch.arange(n * seq, device=x.device)
        for _ in range(self.cfg.warmup_steps):
            self._score_and_step(model, x, y, flat, torch.arange(n), np.repeat(np.arange(n), seq))
        self._restart_slots(torch.arange(self.n_slots), keep_a=True)  # B reset as at a batch start; A kept
        self.ctx.notify("on_update", method=self.name, state="adapters (warm-up)", spans=[(0, n * seq)], used_from=0)
