"""SLOT: fit a small delta on the frozen model's final hidden states H, then score with
logits = softcap(((H + δ)Eᵀ [+ β])) (docs/techniques.md). δ/β are fitted per batch and discarded.

`slot` — the published variants. NOT CAUSAL: each fits δ on a loss that contains the very
targets it then scores (and, for A, later windows' targets), so a scored probability depends on
its own target and on the future. Reproduced for study and for the audit:
  A  one δ (1×1×d) shared by the batch, loss over positions 0…T−2 of every window, padding
     included (#1150);
  B  per-window δ, non-overlapping windows, two passes — pass 2 re-initialises δ and doubles
     the weight of tokens whose pass-1 NLL is above the window's median (#1207);
  C  per-window δ ∈ R^d and logit bias β ∈ R^V, loss over exactly the scored positions, cosine
     lr from lr_max to lr_min (#1313/#1488).
`slot-causal` — legal by construction: per-window δ fitted only on positions before the window's
scored block (their targets precede every scored target), then the block is scored. Window 0,
which scores all its positions, gets δ = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pgolf.config import choice
from pgolf.errors import ConfigError
from pgolf.evaluate.methods.base import EvalMethod, register
from pgolf.runtime import autocast_context


@dataclass
class SlotOptions:
    variant: str = choice("A", ("A", "B", "C"))
    steps: int = 5
    lr: float = 0.003
    lr_max: float = 0.012
    lr_min: float = 0.001
    warmup_fraction: float = 0.0
    weight_decay: float = 1e-8
    eps: float = 1e-5
    batch_windows: int = 32


@dataclass
class CausalSlotOptions:
    steps: int = 8
    lr: float = 0.003
    weight_decay: float = 1e-8
    eps: float = 1e-5
    logit_bias: bool = False
    batch_windows: int = 32


def _frozen_hidden(model, x, runtime) -> torch.Tensor:
    with torch.no_grad(), autocast_context(runtime):
        return model.hidden(x).float()


def _logits(model, h, delta, bias=None) -> torch.Tensor:
    # fp32 projection (small steps on δ vanish in bf16)
    base = getattr(model, "_orig_mod", model)
    logits = base.logits_from_hidden(h + delta)
    return logits + bias if bias is not None else logits


def _fit(model, h, y, weights, params, steps: int, lr_at, wd: float, eps: float, bias_index=None) -> None:
    opt = torch.optim.AdamW(params, lr=lr_at(0), weight_decay=wd, eps=eps)
    for i in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(i)
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            bias = params[1] if bias_index else None
            logits = _logits(model, h, params[0], bias)
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
            loss = (nll * weights.reshape(-1)).sum() / weights.sum().clamp_min(1e-9)
            loss.backward()
        opt.step()


def scored_mask(flat: torch.Tensor, shape) -> torch.Tensor:
    mask = torch.zeros(shape[0] * shape[1], device=flat.device)
    mask[flat] = 1.0
    return mask.view(shape)


@register
class PublishedSlot(EvalMethod):
    name = "slot"
    role = "fit"
    section = "slot"
    Options = SlotOptions
    why_illegal = "fits δ (and β) on the very targets it scores, and on later targets of the batch"

    def logits(self, model, x, y, flat, windows) -> torch.Tensor:
        cfg, rt = self.cfg, self.ctx.runtime
        h = _frozen_hidden(model, x, rt)
        B, T, d = h.shape
        V = self.ctx.preset.model.vocab_size
        if cfg.variant == "A":
            delta = torch.zeros(1, 1, d, device=h.device, requires_grad=True)
            w = torch.ones(B, T, device=h.device)
            w[:, -1] = 0  # positions 0…T−2, padding included (as the seed's code)
            _fit(model, h, y, w, [delta], cfg.steps, lambda i: cfg.lr, cfg.weight_decay, cfg.eps)
            out = _logits(model, h, delta)
        elif cfg.variant == "B":
            valid = torch.zeros(B, T, device=h.device)
            for b, win in enumerate(windows):
                valid[b, : win.length] = 1

            def lr_at(i: int) -> float:
                warm = max(int(cfg.warmup_fraction * cfg.steps), 1)
                if i < warm:
                    return cfg.lr * (i + 1) / warm
                return cfg.lr * 0.5 * (1 + math.cos(math.pi * (i - warm) / max(cfg.steps - warm, 1)))

            delta = torch.zeros(B, 1, d, device=h.device, requires_grad=True)
            _fit(model, h, y, valid, [delta], cfg.steps, lr_at, cfg.weight_decay, cfg.eps)
            with torch.no_grad():
                nll1 = F.cross_entropy(_logits(model, h, delta).transpose(1, 2), y, reduction="none")
                nll1 = nll1.masked_fill(valid == 0, float("nan"))
                median = nll1.nanmedian(dim=1, keepdim=True).values
                weights = valid * torch.where(nll1 > median, 2.0, 1.0)
            delta = torch.zeros(B, 1, d, device=h.device, requires_grad=True)
            _fit(model, h, y, weights, [delta], cfg.steps, lr_at, cfg.weight_decay, cfg.eps)
            out = _logits(model, h, delta)
        elif cfg.variant == "C":
            delta = torch.zeros(B, 1, d, device=h.device, requires_grad=True)
            bias = torch.zeros(B, 1, V, device=h.device, requires_grad=True)
            w = scored_mask(flat, (B, T))

            def lr_at(i: int) -> float:
                return cfg.lr_min + 0.5 * (cfg.lr_max - cfg.lr_min) * (1 + math.cos(math.pi * i / cfg.steps))

            _fit(model, h, y, w, [delta, bias], cfg.steps, lr_at, cfg.weight_decay, cfg.eps, bias_index=1)
            out = _logits(model, h, delta, bias)
        else:
            raise ConfigError(f"evaluation.slot.variant must be 'A', 'B' or 'C', got {cfg.variant!r}")
        if cfg.variant == "A":  # one δ fitted on every position of the batch, used for all of them
            spans = [(min(w.start for w in windows), max(w.start + w.length for w in windows))]
            used = [min(w.start + w.score_from for w in windows)]
        elif cfg.variant == "B":
            spans, used = [(w.start, w.start + w.length) for w in windows], [w.start + w.score_from for w in windows]
        else:  # C: each window's δ/β fitted on exactly the positions it scores
            spans = [(w.start + w.score_from, w.start + w.length) for w in windows]
            used = [w.start + w.score_from for w in windows]
        for span, first_scored in zip(spans, used):
            self.ctx.notify("on_update", method=self.name, state="delta", spans=[span], used_from=first_scored)
        return out.detach()


@register
class CausalSlot(EvalMethod):
    name = "slot-causal"
    role = "fit"
    section = "slot_causal"
    Options = CausalSlotOptions

    def logits(self, model, x, y, flat, windows) -> torch.Tensor:
        cfg, rt = self.cfg, self.ctx.runtime
        h = _frozen_hidden(model, x, rt)
        B, T, d = h.shape
        context = torch.zeros(B, T, device=h.device)
        for b, win in enumerate(windows):
            context[b, : win.score_from] = 1  # targets scored before this window's block
        delta = torch.zeros(B, 1, d, device=h.device, requires_grad=True)
        params = [delta]
        if cfg.logit_bias:
            params.append(torch.zeros(B, 1, self.ctx.preset.model.vocab_size, device=h.device, requires_grad=True))
        if context.sum() > 0:
            _fit(model, h, y, context, params, cfg.steps, lambda i: cfg.lr, cfg.weight_decay, cfg.eps,
                 bias_index=1 if cfg.logit_bias else None)
        for w in windows:  # each window's δ saw only its own context targets, before its scored block
            if w.score_from:
                self.ctx.notify("on_update", method=self.name, state="delta", spans=[(w.start, w.start + w.score_from)],
                                used_from=w.start + w.score_from)
        return _logits(model, h, delta, params[1] if cfg.logit_bias else None).detach()
