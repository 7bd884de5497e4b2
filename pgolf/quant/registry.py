"""The quantizer registry: name -> function(state_dict) -> list[EncodedTensor]."""

from __future__ import annotations

from typing import Callable

import torch

from pgolf.quant.encoding import EncodedTensor
from pgolf.registry import Registry

Quantizer = Callable[[dict[str, torch.Tensor]], list[EncodedTensor]]
QUANTIZERS: Registry[Quantizer] = Registry("quantizer")


def get_quantizer(name: str) -> Quantizer:
    import pgolf.quant.int8_rtn  # noqa: F401  (registers itself)

    return QUANTIZERS.get(name)
