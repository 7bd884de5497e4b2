"""Target machines the planner projects onto.

Figures are datasheet or commonly measured values, stated so a projection can be checked:
dense bf16 peak (the MFU denominator), the NCCL all-reduce bus bandwidth one can expect inside
one NVLink node, and memory per GPU. They are leads, not measurements of this run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgolf.errors import ConfigError


@dataclass(frozen=True)
class GPUKind:
    name: str
    bf16_tflops: float  # dense peak
    allreduce_busbw_gbs: float  # NCCL all-reduce bus bandwidth, 8 GPUs on NVLink
    memory_gib: float
    fp64_tflops: float  # dense FP64 matmul peak (tensor cores): GPTQ's float64 Hessians


GPU_KINDS = {
    # H100 SXM5: 989 TFLOP/s dense bf16, 67 FP64 (tensor core); NVLink4 900 GB/s per GPU, NCCL
    # all-reduce busbw ~360 GB/s measured at tens of MB (conservative: large messages reach ~450).
    "H100": GPUKind("H100", 989.0, 360.0, 80.0, 67.0),
    "H200": GPUKind("H200", 989.0, 360.0, 141.0, 67.0),
    "A100": GPUKind("A100", 312.0, 230.0, 80.0, 19.5),
}


@dataclass(frozen=True)
class Target:
    gpus: int
    kind: GPUKind

    @property
    def label(self) -> str:
        return f"{self.gpus}x{self.kind.name}"


def parse_target(text: str) -> Target:
    """'8xH100' -> Target(8, H100)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*([A-Za-z0-9]+)\s*", text)
    if not m or m.group(2).upper() not in GPU_KINDS or int(m.group(1)) < 1:
        raise ConfigError(f"--gpus {text!r}: expected N x KIND, e.g. 8xH100 (kinds: {', '.join(GPU_KINDS)})")
    return Target(int(m.group(1)), GPU_KINDS[m.group(2).upper()])


def kind_of_device_name(device_name: str) -> GPUKind | None:
    """The GPU kind a torch device name ('NVIDIA H100 80GB HBM3') refers to, if known."""
    upper = device_name.upper()
    for key, kind in GPU_KINDS.items():
        if key in upper:
            return kind
    return None
