"""int8 per-row quantization of gate weights (#1736's `GATED_ATTN_QUANT_GATE`, in the 1.0611 record).

Gate tensors are small (SparseAttnGate: layers × heads × window), so the mixed-precision policy
would keep them in fp16. The record stores them as int8 instead, one fp16 scale per head
(`max|row| / 127`): half the bytes, within 0.0003 bpb of fp16 in its measurements. An add-on names
its gate parameters (`AddOn.GATE_PARAMETERS`); rows are every index but the last (one per head).
"""

from __future__ import annotations

import torch

from pgolf.quant.encoding import EncodedTensor
from pgolf.quant.mixed import quantize_rows_with_clip


def quantize_gate(name: str, t: torch.Tensor, bits: int = 8) -> EncodedTensor:
    w = t.detach().float().reshape(-1, t.shape[-1])
    q, scale = quantize_rows_with_clip(w, w.abs().amax(dim=1).clamp_min(1e-10), bits)
    return EncodedTensor(name, tuple(t.shape), "int_per_row", {"q": q.to(torch.int8).numpy(), "scale": scale.numpy()})


def quantize_gates(tensors: list[EncodedTensor], state: dict[str, torch.Tensor], gate_names: set[str],
                   bits: int = 8) -> list[EncodedTensor]:
    """`tensors` with every floating gate tensor re-encoded per row at `bits` (≤ 8)."""
    out = []
    for t in tensors:
        source = state.get(t.name)
        if t.name in gate_names and source is not None and source.is_floating_point() and source.ndim >= 1:
            out.append(quantize_gate(t.name, source, bits))
        else:
            out.append(t)
    return out
