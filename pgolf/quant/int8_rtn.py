"""The naive baseline's export quantizer, reproduced faithfully (docs/techniques.md).

For each state-dict tensor:
- non-float tensors are stored raw;
- float tensors with ≤ 65,536 elements are kept: fp32 for control tensors (scales, mixes,
  gains, skip weights), fp16 otherwise;
- 2-D float tensors: per-row int8 with clip c_r = quantile(|W_r|, 0.9999984),
  s_r = max(c_r/127, 1/127) stored fp16, q = clamp(round(clip(W, ±c_r)/s_r), ±127);
- other float tensors: one per-tensor scale c/127 (fp32).
The scale floor 1/127 is the contest code's (`clamp_min(1/127)`): rows whose clip is below 1 get
the absolute step 1/127. It is kept as the code has it, not "fixed".
"""

from __future__ import annotations

import numpy as np
import torch

from pgolf.quant.encoding import EncodedTensor
from pgolf.quant.mixed import kept_plan, passthrough, role_of
from pgolf.quant.quantizer import Quantizer, TensorPlan
from pgolf.quant.registry import QUANTIZERS

CLIP_QUANTILE = 0.9999984
QMAX = 127


def _row_quantile(w: torch.Tensor, q: float) -> torch.Tensor:
    # torch.quantile refuses very large inputs; sort-based per-row quantile has no such limit
    # and equals torch.quantile's linear interpolation.
    n = w.size(1)
    srt = w.sort(dim=1).values
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return srt[:, lo] + (srt[:, hi] - srt[:, lo]) * frac


def quantize_per_row(w: torch.Tensor, qmax: int = QMAX, clip_quantile: float = CLIP_QUANTILE):
    w = w.float()
    clip = _row_quantile(w.abs(), clip_quantile) if w.numel() else torch.empty(w.size(0))
    clipped = torch.maximum(torch.minimum(w, clip[:, None]), -clip[:, None])
    scale = (clip / qmax).clamp_min(1.0 / qmax)
    q = torch.clamp(torch.round(clipped / scale[:, None]), -qmax, qmax).to(torch.int8)
    return q, scale.to(torch.float16)


def plan_int8_rtn(name: str, shape: tuple, is_float: bool, role: str, cfg) -> TensorPlan:
    """Kept floats; 2-D: per-row int8 with an fp16 scale a row; otherwise one fp32 scale."""
    kept = kept_plan(shape, is_float, role, cfg)
    if kept is not None:
        return kept
    if len(shape) == 2:
        return TensorPlan("int_per_row", 8, scale_bytes=2 * int(shape[0]))
    return TensorPlan("int_per_tensor", 8, scale_bytes=4)


def quantize_int8_rtn(state: dict[str, torch.Tensor], cfg, roles: dict[str, str], hessians=None) -> list[EncodedTensor]:
    out = []
    for name, t in state.items():
        t = t.detach().cpu()
        shape = tuple(t.shape)
        kept = passthrough(name, t, cfg, role_of(roles, name))
        if kept is not None:
            out.append(kept)
        elif t.ndim == 2:
            q, scale = quantize_per_row(t)
            out.append(EncodedTensor(name, shape, "int_per_row", {"q": q.numpy(), "scale": scale.numpy()}))
        else:
            t32 = t.float().flatten()
            clip = float(torch.quantile(t32.abs(), CLIP_QUANTILE)) if t32.numel() else 0.0
            scale = clip / QMAX if clip > 0 else 1.0
            q = torch.clamp(torch.round(t32.clamp(-clip, clip) / scale), -QMAX, QMAX).to(torch.int8)
            out.append(EncodedTensor(name, shape, "int_per_tensor",
                                     {"q": q.numpy(), "scale": np.array([scale], dtype=np.float32)}))
    return out


# The baseline's exporter reads only the float formats of kept tensors: every matrix is int8.
QUANTIZERS.register("int8-rtn")(Quantizer(name="int8-rtn", bits=8, needs_hessians=False,
                                          options=("small_float", "control_float"), encode=quantize_int8_rtn,
                                          plan=plan_int8_rtn))
