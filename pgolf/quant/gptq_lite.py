"""GPTQ-lite (`.../2026-03-22_11L_EMA_GPTQ-lite...`): data-free clip search. For each matrix try
the clip quantiles {0.999, 0.9995, 0.9999, 0.99999, 1.0} of |W_r| and keep the candidate with
the lowest squared reconstruction error.

Granularity (`pack.clip_search`): "matrix" — one quantile for the whole matrix, what the
#549/#1313/#1488/#731/#1150 code does (their READMEs say per row) — or "row" — the best quantile
per row, #700's `_find_best_row_scales`. Registered as gptq-lite-int8/int6/int5.

"sdclip" (#1394 onwards) replaces the search: the step of row i is k·std(W_i)/qmax, with k per
group of tensors (`pack.sdclip_k`: attention 13, MLP 11.5, embedding 14 in the 1.0611 record). At
k ≈ 12 the clip is almost never hit; k trades bytes for error directly (the code entropy falls
by about log2 k).
"""

from __future__ import annotations

import torch

from pgolf.components import QUANTIZER_BITS
from pgolf.errors import ConfigError
from pgolf.quant.mixed import mixed_quantizer, quantize_rows_with_clip
from pgolf.quant.registry import QUANTIZERS

CLIP_QUANTILES = (0.999, 0.9995, 0.9999, 0.99999, 1.0)
SDCLIP_GROUPS = ("attention", "mlp", "embedding", "other")
DEFAULT_SDCLIP_K = 12.85  # #1394's matrices


def tensor_group(name: str, role: str) -> str:
    """The SDClip group of a quantized tensor: the embedding (or head), attention, MLP, other."""
    if role in ("embedding", "head"):
        return "embedding"
    if ".attn." in name:
        return "attention"
    return "mlp" if ".mlp." in name else "other"


def sdclip_rows(w: torch.Tensor, bits: int, k: float):
    """Per-row step k·std(row)/qmax (the clip sits at k standard deviations)."""
    return quantize_rows_with_clip(w, k * w.std(dim=1).clamp_min(1e-12), bits)


def row_scales(w: torch.Tensor, bits: int, cfg, group: str):
    """Integers and per-row scales under `pack.clip_search` (quantile search, or SDClip)."""
    if cfg.clip_search == "sdclip":
        return sdclip_rows(w, bits, float(cfg.sdclip_k.get(group, DEFAULT_SDCLIP_K)))
    return clip_search_matrix(w, bits, cfg.clip_search)


def row_quantiles(abs_w: torch.Tensor, qs: tuple[float, ...]) -> list[torch.Tensor]:
    """Per-row quantiles (linear interpolation, as torch.quantile) from one sort."""
    srt = abs_w.sort(dim=1).values
    n = srt.size(1)
    out = []
    for q in qs:
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        out.append(srt[:, lo] + (srt[:, hi] - srt[:, lo]) * (pos - lo))
    return out


def clip_search_matrix(w: torch.Tensor, bits: int, granularity: str):
    if granularity not in ("matrix", "row"):
        raise ConfigError(f"pack.clip_search must be 'matrix' or 'row', got {granularity!r}")
    best_q = best_s = best_err = None
    for clip in row_quantiles(w.abs(), CLIP_QUANTILES):
        q, s = quantize_rows_with_clip(w, clip, bits)
        err = (q.float() * s.float()[:, None] - w).square().sum(dim=1)  # per row
        if best_q is None:
            best_q, best_s, best_err = q, s, err
        elif granularity == "matrix":
            if err.sum() < best_err.sum():
                best_q, best_s, best_err = q, s, err
        else:
            better = err < best_err
            best_q = torch.where(better[:, None], q, best_q)
            best_s = torch.where(better, s, best_s)
            best_err = torch.minimum(err, best_err)
    return best_q, best_s


CLIP_OPTIONS = ("clip_search", "sdclip_k")


def clip_matrix(cfg, roles, hessians=None, state=None, matrix_bits=None):
    """One pack's matrix quantizer: the clip search (or SDClip) of the tensor's group."""
    return lambda w, bits, name: row_scales(w, bits, cfg, tensor_group(name, roles[name]))


for _bits in QUANTIZER_BITS:
    QUANTIZERS.register(f"gptq-lite-int{_bits}")(
        mixed_quantizer(f"gptq-lite-int{_bits}", _bits, None, CLIP_OPTIONS, bind=clip_matrix))
