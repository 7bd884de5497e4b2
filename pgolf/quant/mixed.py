"""The seeds' mixed-precision policy (docs/techniques.md), shared by the per-row quantizers:

- non-float tensors stored raw;
- tensors of ≤ 65,536 elements kept: fp32 for control tensors, fp16 otherwise;
- the token embedding (it is also the output head) at `pack.embedding_bits` (8);
- every other matrix at the quantizer's bits (int6 / int5 / int8), per row, one fp16 scale a row;
  tensors of other ranks are flattened to (first dim, rest) rows.
Below 8 bits the integers are bit-packed (`int_per_row_packed`), so int6 costs 6 bits a weight.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from pgolf.config import PackConfig
from pgolf.errors import PgolfError
from pgolf.quant.encoding import EncodedTensor
from pgolf.quant.packing import pack_signed

KEEP_FLOAT_MAX_NUMEL = 65_536
# (matrix (rows, cols) float32, bits, tensor name) -> (integers, per-row fp16 scales)
MatrixQuantizer = Callable[[torch.Tensor, int, str], tuple[torch.Tensor, torch.Tensor]]


def qmax_for(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def quantize_rows_with_clip(w: torch.Tensor, clip: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row grid of ±qmax steps spanning ±clip_r; scales rounded to fp16 first so the
    integers are exactly those the stored scales decode."""
    qmax = qmax_for(bits)
    scale = (clip / qmax).clamp_min(1e-8).half()
    s = scale.float()[:, None]
    q = torch.clamp(torch.round(w.clamp(-clip[:, None], clip[:, None]) / s), -qmax, qmax)
    return q.to(torch.int16), scale


FLOAT_DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def role_of(roles: dict[str, str], name: str) -> str:
    try:
        return roles[name]
    except KeyError:
        raise PgolfError(f"{name}: no parameter role for this tensor; pack a checkpoint of the model its "
                         "preset builds (pgolf.model.roles)") from None


def passthrough(name: str, t: torch.Tensor, cfg: PackConfig | None, role: str) -> EncodedTensor | None:
    """Tensors every policy stores unquantized: non-float ones raw; small floats in
    `pack.small_float` (control tensors in `pack.control_float`; fp16 / fp32 by default).
    None for a tensor the quantizer must handle."""
    shape = tuple(t.shape)
    if not t.is_floating_point():
        return EncodedTensor(name, shape, "raw", {"data": t.numpy()}, dtype=str(t.dtype).removeprefix("torch."))
    if t.numel() <= KEEP_FLOAT_MAX_NUMEL:
        cfg = cfg or PackConfig()
        keep = FLOAT_DTYPES[cfg.control_float if role == "control" else cfg.small_float]
        return EncodedTensor(name, shape, "float", {"data": t.to(keep).numpy()})
    return None


def magnitude_prune(w: torch.Tensor, fraction: float) -> torch.Tensor:
    """Zero the `fraction` smallest |w| of a matrix (#700 prunes 3% before quantizing)."""
    if fraction <= 0:
        return w
    k = int(fraction * w.numel())
    if k == 0:
        return w
    threshold = w.abs().flatten().kthvalue(k).values
    return torch.where(w.abs() <= threshold, torch.zeros_like(w), w)


def encode_mixed(state: dict[str, torch.Tensor], cfg: PackConfig, roles: dict[str, str], matrix_bits: int,
                 quantize_matrix: MatrixQuantizer) -> list[EncodedTensor]:
    out = []
    for name, t in state.items():
        t = t.detach().cpu()
        shape = tuple(t.shape)
        role = role_of(roles, name)
        kept = passthrough(name, t, cfg, role)
        if kept is not None:
            out.append(kept)
            continue
        bits = cfg.embedding_bits if role in ("embedding", "head") else matrix_bits
        w = magnitude_prune(t.float().reshape(t.shape[0], -1), cfg.magnitude_prune)
        q, scale = quantize_matrix(w, bits, name)
        if bits == 8:
            out.append(EncodedTensor(name, shape, "int_per_row",
                                     {"q": q.to(torch.int8).numpy(), "scale": scale.numpy()}))
        else:
            out.append(EncodedTensor(name, shape, "int_per_row_packed",
                                     {"q": pack_signed(q.numpy(), bits), "scale": scale.numpy(),
                                      "bits": np.array([bits], dtype=np.uint8)}))
    return out
