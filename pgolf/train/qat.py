"""Training-side quantization awareness: late QAT with a straight-through estimator, and CROWN-Q.

Late QAT (docs/techniques.md): once the LR multiplier drops below `qat_start_lr_scale` (0.15 in
#549/#731/#1313/#1488/#1207, 0.5 in #700), every quantizable matrix is used fake-quantized in the
forward pass, W_q = s·clamp(round(W/s), ±qmax) with the row-max scale s = max|W_r|/qmax, and the
gradient flows as if W_q = W (W + stopgrad(W_q − W)). The switch is verified: `enable_qat`
returns how far the forward weights moved, and the loop logs it (the 2026-03-21 record's QAT
never ran because a compiled graph constant-folded its flag).

CROWN-Q (PR #693, #700; §5.7): while QAT is active, add
P = (λ/12)·Σ_layers mean_{r,j}(W_rj² · δ_r²), δ_r = stopgrad(max_j |W_rj|)/qmax,
the expected rounding-noise energy with W² as a curvature proxy.
"""

from __future__ import annotations

import torch
from torch import nn

from pgolf.model.blocks import Linear
from pgolf.quant.mixed import KEEP_FLOAT_MAX_NUMEL



def quantizable(model: nn.Module) -> list[Linear]:
    return [m for m in model.modules() if isinstance(m, Linear) and m.weight.numel() > KEEP_FLOAT_MAX_NUMEL]


def fake_quant(bits: int):
    qmax = (1 << (bits - 1)) - 1

    def transform(w: torch.Tensor) -> torch.Tensor:
        scale = (w.detach().abs().amax(dim=1, keepdim=True) / qmax).clamp_min(1e-8)
        wq = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
        return w + (wq - w).detach()

    return transform


@torch.no_grad()
def enable_qat(model: nn.Module, bits: int) -> float:
    """Switch fake quantization on; return the mean |W_q − W| it introduces (> 0 proves it acts)."""
    layers = quantizable(model)
    transform = fake_quant(bits)
    moved = 0.0
    for m in layers:
        m.weight_transform = transform
        moved += (transform(m.weight) - m.weight).abs().mean().item()
    return moved / max(len(layers), 1)


def disable_qat(model: nn.Module) -> None:
    for m in quantizable(model):
        m.weight_transform = None


def crown_q_penalty(model: nn.Module, lam: float, qmax: int) -> torch.Tensor:
    terms = []
    for m in quantizable(model):
        w = m.weight
        delta = w.detach().abs().amax(dim=1, keepdim=True) / qmax
        terms.append((w.square() * delta.square()).mean())
    if not terms:
        return torch.zeros(())
    return (lam / 12.0) * torch.stack(terms).sum()
