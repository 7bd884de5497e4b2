"""A quantizer is an object that knows what it writes: the bits of the block matrices, whether it
needs calibration Hessians, the `[pack]` options it reads, how it encodes a checkpoint, and its
byte model — for every tensor, the encoding it will get and the bytes of its stored parts that are
not compressed integers (floats, scales). `pack` runs it, `pgolf info` and the pre-training budget
check project bytes from its byte model, and the preset check reads its traits, so none of them
restates the policy (`pgolf.quant.mixed`) or parses a quantizer's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pgolf.config import PackConfig
from pgolf.errors import PgolfError
from pgolf.quant.encoding import EncodedTensor

# [pack] keys of the shared mixed-precision policy (every per-row quantizer reads them)
POLICY_OPTIONS = ("embedding_bits", "small_float", "control_float", "magnitude_prune")


@dataclass(frozen=True)
class TensorPlan:
    """What one tensor becomes: its encoding, its integer bits (0: stored as it is), and the exact
    bytes of its stored floats and scales."""

    encoding: str  # raw | float | int_per_row | int_per_row_packed | int_per_tensor
    bits: int
    float_bytes: int = 0
    scale_bytes: int = 0

    @property
    def quantized(self) -> bool:
        return self.bits > 0


# (tensor name, shape, is a float tensor, parameter role, [pack] settings) -> TensorPlan
ByteModel = Callable[[str, tuple, bool, str, PackConfig], TensorPlan]
Encoder = Callable[..., list[EncodedTensor]]


@dataclass(frozen=True)
class Quantizer:
    name: str
    bits: int  # of the block matrices
    needs_hessians: bool
    options: tuple[str, ...]  # the [pack] keys it reads
    encode: Encoder  # (state, PackConfig, roles, hessians) -> tensors
    plan: ByteModel

    def __call__(self, state, cfg: PackConfig, roles: dict[str, str], hessians=None) -> list[EncodedTensor]:
        if self.needs_hessians and not hessians:
            raise PgolfError(f"{self.name} needs calibration Hessians; run `pgolf calibrate RUN` first")
        return self.encode(state, cfg, roles, hessians)

    def reads(self, key: str) -> bool:
        return key in self.options
