"""The quantizer registry: name -> function(state_dict, PackConfig, roles, hessians=None) -> list[EncodedTensor]
(`roles`: each tensor's parameter role, `pgolf.model.roles`)."""

from __future__ import annotations

from typing import Callable

from pgolf.quant.encoding import EncodedTensor
from pgolf.registry import Registry

Quantizer = Callable[..., list[EncodedTensor]]
QUANTIZERS: Registry[Quantizer] = Registry("quantizer")


def get_quantizer(name: str) -> Quantizer:
    """The quantizer `name`; its module registers it on first lookup (`pgolf.components`)."""
    return QUANTIZERS.get(name)


def matrix_bits(quant: str) -> int:
    """Bits of the block matrices a registered quantizer writes (its name ends in -intN; the
    baseline's int8-rtn is 8)."""
    return 8 if quant == "int8-rtn" else int(quant.rsplit("-int", 1)[1])


def needs_hessians(quant: str) -> bool:
    return quant.startswith("gptq-int")
