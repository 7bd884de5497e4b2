"""How a quantized tensor is stored: named numpy parts plus an encoding name that says how to
rebuild the float tensor. Decoding depends only on the encoding, never on the quantizer that
produced it, so any artifact can be loaded by any pgolf that knows its encodings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from pgolf.quant.awq import insert_protected
from pgolf.registry import Registry


@dataclass
class EncodedTensor:
    name: str
    shape: tuple[int, ...]
    encoding: str
    parts: dict[str, np.ndarray]
    dtype: str = "float32"  # dtype of the restored tensor

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.parts.values())


DECODERS: Registry[Callable[[EncodedTensor], torch.Tensor]] = Registry("tensor encoding")


@DECODERS.register("raw")
def _decode_raw(t: EncodedTensor) -> torch.Tensor:
    return torch.from_numpy(np.array(t.parts["data"])).reshape(t.shape)


@DECODERS.register("float")
def _decode_float(t: EncodedTensor) -> torch.Tensor:
    return torch.from_numpy(np.array(t.parts["data"])).float().reshape(t.shape)


def main_shape(t: EncodedTensor) -> tuple[int, ...]:
    """The shape of a tensor's own codes: its shape, less the columns AWQ-lite holds apart
    (pgolf.quant.awq), which are (rows, rest) matrices."""
    if "awq_q" not in t.parts:
        return tuple(t.shape)
    return (int(t.shape[0]), int(np.prod(t.shape[1:])) - int(np.asarray(t.parts["awq_q"]).shape[1]))


def _scaled_rows(q: torch.Tensor, t: EncodedTensor) -> torch.Tensor:
    """Integers (rows, …) times their row's scale, in the shape of the tensor's own codes."""
    scale = torch.from_numpy(np.array(t.parts["scale"])).float()
    return (q.float().view(scale.numel(), -1) * scale[:, None]).reshape(main_shape(t))


@DECODERS.register("int_per_row")
def _decode_per_row(t: EncodedTensor) -> torch.Tensor:
    return _scaled_rows(torch.from_numpy(np.array(t.parts["q"])), t)


@DECODERS.register("int_per_row_t")
def _decode_per_row_columns(t: EncodedTensor) -> torch.Tensor:
    """Per-row integers stored column by column (pgolf.quant.layout, `columns`)."""
    return _scaled_rows(torch.from_numpy(np.array(t.parts["q"])).T.contiguous(), t)


@DECODERS.register("int_per_tensor")
def _decode_per_tensor(t: EncodedTensor) -> torch.Tensor:
    q = torch.from_numpy(np.array(t.parts["q"])).float()
    scale = float(np.array(t.parts["scale"]).reshape(-1)[0])
    return (q * scale).reshape(t.shape)


@DECODERS.register("int_per_row_packed")
def _decode_per_row_packed(t: EncodedTensor) -> torch.Tensor:
    from pgolf.quant.packing import unpack_signed

    bits = int(np.array(t.parts["bits"]).reshape(-1)[0])
    count = int(np.prod(main_shape(t)))
    return _scaled_rows(torch.from_numpy(unpack_signed(t.parts["q"], bits, count).astype(np.float32)), t)


def lqer_correction(t: EncodedTensor) -> torch.Tensor:
    """Â·B̂ of a tensor carrying LQER parts (pgolf.quant.lqer): 2-bit A with one scale, 4-bit B with
    one scale per group of its flattened elements."""
    qa = torch.from_numpy(np.array(t.parts["lqer_a"])).float()
    a = qa * float(np.array(t.parts["lqer_a_scale"]).astype(np.float32).reshape(-1)[0])
    qb = torch.from_numpy(np.array(t.parts["lqer_b"])).float()
    b_scale = torch.from_numpy(np.array(t.parts["lqer_b_scale"]).astype(np.float32))
    b = (qb.reshape(b_scale.numel(), -1) * b_scale[:, None]).reshape(qb.shape)
    return (a @ b).reshape(t.shape)


def decode(t: EncodedTensor) -> torch.Tensor:
    out = DECODERS.get(t.encoding)(t)
    if "awq_q" in t.parts:
        out = insert_protected(out, t.parts).reshape(t.shape)
    if "lqer_a" in t.parts:
        out = out.float() + lqer_correction(t)
    return out.to(getattr(torch, t.dtype))


def decode_state_dict(tensors: list[EncodedTensor]) -> dict[str, torch.Tensor]:
    return {t.name: decode(t) for t in tensors}
