"""The quantizer registry: name -> `Quantizer` (pgolf.quant.quantizer), an object that carries its
bits, whether it needs Hessians, the [pack] options it reads, its encoder and its byte model."""

from __future__ import annotations

from pgolf.registry import Registry

QUANTIZERS: Registry = Registry("quantizer")


def get_quantizer(name: str):
    """The quantizer `name`; its module registers it on first lookup (`pgolf.components`)."""
    return QUANTIZERS.get(name)
