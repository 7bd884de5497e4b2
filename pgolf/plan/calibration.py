"""How long a preset's in-cap GPTQ calibration takes on a target GPU, estimated from its work.

Calibration runs on one rank inside the training cap (`train.gptq_reserve_seconds`), so it must fit
that reserve. Its work, counted from the model's structure at the end of training (looped layers
run, and are hooked, once per pass):

- forward passes over the calibration tokens: 2 FLOPs per matmul weight per token (the output head
  only when the embedding is untied: a tied one records the final hidden states instead) plus causal
  attention, 2·d·T per token and layer;
- one Hessian update per quantizable linear and call, 2·d_in² FLOPs per token in float64 (inputs
  that several linears share, as Q/K/V do, are multiplied once), plus the tied embedding's;
- self-generated calibration (#1019/#1207) samples token by token with no cache, so step t runs a
  forward over the whole t-token prefix, and pays a fixed launch cost per layer and step.

Rates are the target's datasheet peaks times the efficiencies below — leads for a plan, to be
replaced by a GPU measurement (`benchmarks/gpu_throughput.py`), not measurements themselves.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

from torch import nn

from pgolf.config import Preset
from pgolf.model.roles import model_on_meta
from pgolf.plan.hardware import GPUKind
from pgolf.quant.calibration import quantizable_linears

FORWARD_EFFICIENCY = 0.4  # of the bf16 peak, for inference-shaped batches of 8 sequences
HESSIAN_EFFICIENCY = 0.8  # of the FP64 peak: large square DGEMMs run near it
LAUNCH_SECONDS_PER_LAYER = 1.5e-4  # a sampling step's kernels per virtual layer, launch-bound at small batch


@dataclass
class CalibrationEstimate:
    sequences: int
    seq_len: int
    source: str
    forward_tokens: int  # token positions run through the model (with every prefix when sampling)
    forward_flops: float
    hessian_flops: float
    seconds: float
    reserve_seconds: float

    @property
    def fits(self) -> bool:
        return self.seconds <= self.reserve_seconds

    def as_dict(self) -> dict:
        return {**asdict(self), "fits": self.fits}


def _calls_per_forward(model: nn.Module) -> Counter:
    """How often each block runs in one forward of the trained model (its final layer order)."""
    model.set_train_progress(1.0)
    return Counter(model.layer_order())


def calibration_work(preset: Preset) -> tuple[float, float, int]:
    """(forward FLOPs per token at context T, Hessian FLOPs per token, virtual layers)."""
    model = model_on_meta(preset.model)
    calls = _calls_per_forward(model)
    virtual = sum(calls.values())
    cfg = preset.model

    def times(name: str) -> int:
        return calls[int(name.split(".")[1])] if name.startswith("blocks.") else 1

    matmul = sum(times(n) * m.weight.numel() for n, m in model.named_modules() if isinstance(m, nn.Linear))
    if not cfg.tie_embeddings:
        matmul += cfg.vocab_size * cfg.model_dim
    hessian = 0.0
    shared: set[tuple[str, int]] = set()  # (owner module, input width): Q/K/V read one input
    for name, linear in quantizable_linears(model).items():
        owner = name.rsplit(".", 2)[0]
        key = (owner, linear.in_features)
        if name.rsplit(".", 2)[1] in ("c_q", "c_k", "c_v") and key in shared:
            continue
        shared.add(key)
        hessian += times(name) * 2.0 * linear.in_features ** 2
    if cfg.tie_embeddings:
        hessian += 2.0 * cfg.model_dim ** 2
    return 2.0 * matmul, hessian, virtual


def estimate_calibration(preset: Preset, kind: GPUKind) -> CalibrationEstimate | None:
    """The preset's in-cap calibration on one GPU of `kind`; None when it calibrates nothing."""
    t = preset.train
    if t.gptq_calibration_sequences <= 0:
        return None
    seq = t.gptq_calibration_seq_len or t.seq_len
    n = t.gptq_calibration_sequences
    matmul, hessian, virtual = calibration_work(preset)
    d = preset.model.model_dim
    sampling = t.gptq_calibration_source == "self"
    if sampling:  # step k (k = 1..seq−1) runs a k-token prefix: Σk positions, Σk²/2 attention pairs
        positions = n * seq * (seq - 1) // 2
        attention = 2.0 * virtual * d * n * sum(k * k for k in range(1, seq)) / 2
        steps = -(-n // 8) * (seq - 1)  # batches of 8 sequences, as calibration samples them
    else:
        positions = n * seq
        attention = 2.0 * virtual * d * n * seq * seq / 2
        steps = -(-n // 8)
    forward = matmul * positions + attention
    hessians = hessian * n * seq
    seconds = (forward / (kind.bf16_tflops * 1e12 * FORWARD_EFFICIENCY)
               + hessians / (kind.fp64_tflops * 1e12 * HESSIAN_EFFICIENCY)
               + steps * virtual * LAUNCH_SECONDS_PER_LAYER)
    return CalibrationEstimate(sequences=n, seq_len=seq, source=t.gptq_calibration_source, forward_tokens=positions,
                               forward_flops=forward, hessian_flops=hessians, seconds=seconds,
                               reserve_seconds=t.gptq_reserve_seconds)
