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

from pgolf.config import FLOAT_FORMATS, PackConfig
from pgolf.errors import PgolfError
from pgolf.quant.encoding import EncodedTensor
from pgolf.quant.packing import pack_signed
from pgolf.quant.quantizer import POLICY_OPTIONS, Quantizer, TensorPlan

KEEP_FLOAT_MAX_NUMEL = 65_536
# (matrix (rows, cols) float32, bits, tensor name) -> (integers, per-row fp16 scales[, extra parts]);
# with extra parts (AWQ-lite's protected columns, pgolf.quant.awq) the integers are the other columns.
MatrixQuantizer = Callable[[torch.Tensor, int, str], tuple]


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


FLOAT_DTYPES = dict(zip(FLOAT_FORMATS, (torch.float16, torch.float32)))


def role_of(roles: dict[str, str], name: str) -> str:
    try:
        return roles[name]
    except KeyError:
        raise PgolfError(f"{name}: no parameter role for this tensor; pack a checkpoint of the model its "
                         "preset builds (pgolf.model.roles)") from None


def kept_float(shape: tuple, is_float: bool, role: str, cfg: PackConfig | None) -> str | None:
    """The float format a tensor is kept in unquantized (`pack.small_float`, control tensors in
    `pack.control_float`), "raw" for a non-float tensor, None for one the quantizer encodes: the
    rule every policy starts from, and every byte model."""
    if not is_float:
        return "raw"
    if int(np.prod(shape)) <= KEEP_FLOAT_MAX_NUMEL:
        cfg = cfg or PackConfig()
        return cfg.control_float if role == "control" else cfg.small_float
    return None


def passthrough(name: str, t: torch.Tensor, cfg: PackConfig | None, role: str) -> EncodedTensor | None:
    """Tensors every policy stores unquantized (see `kept_float`); None for a tensor the quantizer
    must handle."""
    shape = tuple(t.shape)
    keep = kept_float(shape, t.is_floating_point(), role, cfg)
    if keep == "raw":
        return EncodedTensor(name, shape, "raw", {"data": t.numpy()}, dtype=str(t.dtype).removeprefix("torch."))
    if keep is not None:
        return EncodedTensor(name, shape, "float", {"data": t.to(FLOAT_DTYPES[keep]).numpy()})
    return None


def kept_plan(shape: tuple, is_float: bool, role: str, cfg: PackConfig, itemsize: int = 4) -> TensorPlan | None:
    """The byte model of a kept tensor (`itemsize`: a raw tensor's element size), or None."""
    keep = kept_float(shape, is_float, role, cfg)
    if keep is None:
        return None
    size = itemsize if keep == "raw" else FLOAT_DTYPES[keep].itemsize
    return TensorPlan("raw" if keep == "raw" else "float", 0, float_bytes=int(np.prod(shape)) * size)


def matrix_bits_of(role: str, cfg: PackConfig, matrix_bits: int) -> int:
    """The mixed policy's bits for a quantized tensor: the embedding (or head) at `embedding_bits`."""
    return cfg.embedding_bits if role in ("embedding", "head") else matrix_bits


def mixed_plan(matrix_bits: int):
    """The mixed policy's byte model at `matrix_bits`: kept floats, else per-row integers (bit-packed
    below 8 bits) with one fp16 scale a row of (first dim, rest)."""

    def plan(name: str, shape: tuple, is_float: bool, role: str, cfg: PackConfig) -> TensorPlan:
        kept = kept_plan(shape, is_float, role, cfg)
        if kept is not None:
            return kept
        bits = matrix_bits_of(role, cfg, matrix_bits)
        return TensorPlan("int_per_row" if bits == 8 else "int_per_row_packed", bits, scale_bytes=2 * int(shape[0]))

    return plan


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
        bits = matrix_bits_of(role, cfg, matrix_bits)
        w = magnitude_prune(t.float().reshape(t.shape[0], -1), cfg.magnitude_prune)
        q, scale, *extra = quantize_matrix(w, bits, name)
        parts = extra[0] if extra else {}
        if bits == 8:
            out.append(EncodedTensor(name, shape, "int_per_row",
                                     {"q": q.to(torch.int8).numpy(), "scale": scale.numpy(), **parts}))
        else:
            out.append(EncodedTensor(name, shape, "int_per_row_packed",
                                     {"q": pack_signed(q.numpy(), bits), "scale": scale.numpy(),
                                      "bits": np.array([bits], dtype=np.uint8), **parts}))
    return out


def mixed_quantizer(name: str, bits: int, matrix: MatrixQuantizer | Callable, options: tuple[str, ...] = (),
                    needs_hessians: bool = False, bind: Callable | None = None) -> Quantizer:
    """A per-row quantizer under the mixed policy: `matrix(w, bits, name)` quantizes one matrix, or
    `bind(cfg, roles, hessians, state, bits)` returns that function for one pack (it may look at the
    whole state first: AWQ-lite ranks the groups of every matrix)."""

    def encode(state, cfg, roles, hessians=None):
        return encode_mixed(state, cfg, roles, bits, bind(cfg, roles, hessians, state, bits) if bind else matrix)

    return Quantizer(name=name, bits=bits, needs_hessians=needs_hessians, options=POLICY_OPTIONS + tuple(options),
                     encode=encode, plan=mixed_plan(bits))
