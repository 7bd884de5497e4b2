"""The neural expert of the mixers: softmax(z/τ) with τ from `evaluation.temperature` — a number
fixed in advance (0.98 in #731) or "adaptive", #700's per-token τ = clamp(1 − 0.02·(1 − H/ln V),
0.9, 1.05) computed from the model's own entropy H (legal: it never reads the target)."""

from __future__ import annotations

import math

import torch

from pgolf.config import Preset


def preset_temperature(preset: Preset) -> float | None:
    """The preset's evaluation temperature; None means adaptive."""
    temp = preset.evaluation.get("temperature", 1.0)
    return None if temp == "adaptive" else float(temp)


def tempered_softmax(logits: torch.Tensor, temperature: float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p, H, τ): the tempered distribution (float64), the entropy of the untempered one, and τ (n, 1)."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    if temperature is None:
        tau = (1 - 0.02 * (1 - entropy / math.log(logits.size(-1)))).clamp(0.9, 1.05)[:, None]
    else:
        tau = torch.full_like(entropy[:, None], temperature)
    return torch.softmax(logits.double() / tau, dim=-1), entropy, tau
