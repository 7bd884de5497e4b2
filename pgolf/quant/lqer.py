"""LQER, asymmetric (#1797; in the 1.0611 record): a low-rank correction of the quantization error of
the few matrices that lost the most.

After quantization, for every quantized matrix E = W − Ŵ (Ŵ: what the artifact decodes) and
‖E‖_F; for the `top` largest, a thin SVD E ≈ U_r S_r V_rᵀ (r = `rank`), A = U_r S_r (rows × r),
B = V_rᵀ (r × cols). A is stored as 2-bit codes in [−2, 1] with one fp16 scale max|A|/1.5; B as
4-bit codes in [−8, 7] with one fp16 scale max|group|/7.5 per `group` consecutive elements of the
flattened B. The decoder adds Â·B̂ (`pgolf.quant.encoding.lqer_correction`). Codes are kept one a
byte (int8); the compressor sees their small alphabet. The record falls back to symmetric per-row
factors when `group` does not divide B's size; here the group then shrinks to B's row length
(`cols`), which always divides it — the same asymmetric codes, more scales.
"""

from __future__ import annotations

import torch

from pgolf.quant.encoding import EncodedTensor, decode

# Encodings of the quantizers' matrices (not raw / float passthrough).
MATRIX_ENCODINGS = ("int_per_row", "int_per_row_packed", "int_per_row_t")


def lqer_factors(error: torch.Tensor, rank: int, group: int) -> dict:
    """The stored parts of a rank-`rank` asymmetric correction of the 2-D `error`."""
    u, s, vh = torch.linalg.svd(error.double(), full_matrices=False)
    r = min(rank, s.numel())
    a = (u[:, :r] * s[:r]).float()
    b = vh[:r].float().contiguous()
    a_scale = (a.abs().amax().clamp_min(1e-10) / 1.5).half()
    qa = torch.clamp(torch.round(a / a_scale.float()), -2, 1).to(torch.int8)
    g = group if b.numel() % group == 0 else b.shape[1]
    groups = b.reshape(-1, g)
    b_scale = (groups.abs().amax(dim=1).clamp_min(1e-10) / 7.5).half()
    qb = torch.clamp(torch.round(groups / b_scale.float()[:, None]), -8, 7).to(torch.int8).reshape(b.shape)
    return {"lqer_a": qa.numpy(), "lqer_a_scale": a_scale.reshape(1).numpy(),
            "lqer_b": qb.numpy(), "lqer_b_scale": b_scale.numpy()}


def add_lqer(tensors: list[EncodedTensor], state: dict[str, torch.Tensor], rank: int, top: int,
             group: int = 64) -> tuple[list[EncodedTensor], dict[str, float]]:
    """`tensors` with an LQER correction on the `top` quantized matrices of largest ‖W − Ŵ‖_F,
    and those matrices' error norms before the correction."""
    errors = {}
    for t in tensors:
        if t.encoding in MATRIX_ENCODINGS and t.name in state:
            w = state[t.name].detach().float()
            errors[t.name] = (w - decode(t).float()).reshape(w.shape[0], -1)
    picked = sorted(errors, key=lambda n: -float(errors[n].norm()))[:top]
    out = []
    for t in tensors:
        if t.name in picked:
            t = EncodedTensor(t.name, t.shape, t.encoding, {**t.parts, **lqer_factors(errors[t.name], rank, group)},
                              t.dtype)
        out.append(t)
    return out, {n: float(errors[n].norm()) for n in picked}
