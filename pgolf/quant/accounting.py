"""Where an artifact's bytes go, per group of tensors, counted two ways that must agree: planned from
the quantizer's byte model and the `[pack]` settings (what `pgolf info` and the budget check project
from, before any training), and stored, from the tensors `pack` encodes. Both count, per group, the
parts that are stored as they are — floats, scales, the int8 gate rows, LQER factors, AWQ-lite's
fine steps — and the integer weights the compressor squeezes (whose bytes only a compressor can
tell), those of AWQ-lite's protected columns apart (they are at `pack.awq_bits`).

Groups: kept floats by format ("small floats (fp16)", "control floats (fp32)"), "gates int8"
(`pack.gate_bits`), "embedding int7" (the tied embedding, or head), "matrices int6" (every other
quantized tensor). LQER factors count in their matrix's group. Which matrices get LQER depends on
their quantization errors, so before packing the plan takes the `lqer_top` whose factors cost the
most (an upper bound); given the matrices pack chose, it is exact. AWQ-lite's groups likewise: before
packing, the `awq_top` groups of the candidates with the most rows (each costs a fine step a row).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pgolf.config import PackConfig
from pgolf.quant.encoding import EncodedTensor
from pgolf.quant.quantizer import Quantizer, TensorPlan

EXACT = ("floats", "scales", "gates", "lqer", "awq")  # stored as they are: their bytes are known exactly
LQER_PARTS = ("lqer_a", "lqer_a_scale", "lqer_b", "lqer_b_scale")
AWQ_EXACT_PARTS = ("awq_start", "awq_scale")


@dataclass
class GroupBytes:
    bits: int = 0  # integer bits of the group (0: stored as floats)
    params: int = 0
    integer_params: int = 0  # weights stored as compressed integers at `bits`
    awq_params: int = 0  # weights stored as compressed integers at pack.awq_bits (AWQ-lite)
    exact: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EXACT, 0))

    @property
    def exact_bytes(self) -> int:
        return sum(self.exact.values())

    def as_dict(self) -> dict:
        return {"bits": self.bits, "params": self.params, "integer_params": self.integer_params,
                "awq_params": self.awq_params, "exact_bytes": self.exact_bytes, **self.exact}


def group_of(plan: TensorPlan, role: str, gate: bool, cfg: PackConfig) -> tuple[str, int]:
    """(label, integer bits) of a tensor's group."""
    if gate:
        return f"gates int{cfg.gate_bits}", 0
    if not plan.quantized:
        if plan.encoding == "raw":
            return "raw tensors", 0
        fmt = cfg.control_float if role == "control" else cfg.small_float
        return (f"control floats ({fmt})" if role == "control" else f"small floats ({fmt})"), 0
    if role in ("embedding", "head"):
        return f"embedding int{plan.bits}", plan.bits
    return f"matrices int{plan.bits}", plan.bits


def gate_bytes(shape: tuple) -> int:
    """int8 codes plus one fp16 scale a row (rows: every index but the last), pgolf.quant.gate_int8."""
    n = int(np.prod(shape))
    return n + 2 * (n // int(shape[-1]))


def lqer_bytes(shape: tuple, rank: int, group: int) -> int:
    """A rank-r correction of a (rows, rest) matrix, pgolf.quant.lqer: A's 2-bit codes one a byte and
    its fp16 scale, B's 4-bit codes one a byte and one fp16 scale per `group` elements (per row of B
    when `group` does not divide it)."""
    rows, cols = int(shape[0]), int(np.prod(shape[1:]))
    r = min(rank, rows, cols)
    g = group if (r * cols) % group == 0 else cols
    return rows * r + 2 + r * cols + 2 * (r * cols // g)


def awq_bytes(shape: tuple, groups: int) -> int:
    """The exact parts of `groups` protected groups of a (rows, rest) matrix (pgolf.quant.awq): one
    fp16 fine step a row and an int16 first column a group."""
    return 2 * int(shape[0]) + 2 * groups


def _awq_upper_bound(plans: dict, tensors: dict, roles: dict[str, str], cfg: PackConfig, gated: set[str]) -> dict[str, int]:
    """Before packing: the `awq_top` groups a candidate matrix could give, those of most rows first."""
    slots = []
    for name, plan in plans.items():
        shape = tensors[name][0]
        if not plan.quantized or name in gated or plan.bits >= cfg.awq_bits or len(shape) < 2:
            continue
        if roles[name] in ("embedding", "head") and not cfg.gptq_embedding:
            continue  # GPTQ does not solve it, so AWQ-lite cannot protect it
        cols = int(np.prod(shape[1:]))
        slots += [(-int(shape[0]), name)] * (cols // cfg.awq_group)
    out: dict[str, int] = {}
    for _, name in sorted(slots)[: cfg.awq_top]:
        out[name] = out.get(name, 0) + 1
    return out


def planned(tensors: dict[str, tuple[tuple, bool]], roles: dict[str, str], cfg: PackConfig, quantizer: Quantizer,
            gates: set[str], lqer_names: list[str] | None = None,
            awq_groups: dict[str, int] | None = None) -> dict[str, GroupBytes]:
    """Per group, from the byte model: `tensors` maps names to (shape, is float). `lqer_names`: the
    matrices pack gave LQER (None: the `lqer_top` costliest, an upper bound); `awq_groups`: the
    protected groups pack chose per matrix (None: an upper bound, `_awq_upper_bound`)."""
    plans = {name: quantizer.plan(name, shape, is_float, roles[name], cfg) for name, (shape, is_float) in tensors.items()}
    gated = {n for n in plans if cfg.gate_bits and n in gates and tensors[n][1] and len(tensors[n][0]) >= 1}
    lqer: set[str] = set()
    if cfg.lqer_rank and cfg.lqer_top:
        matrices = [n for n, p in plans.items() if p.quantized and n not in gated]
        if lqer_names is None:
            cost = {n: lqer_bytes(tensors[n][0], cfg.lqer_rank, cfg.lqer_group) for n in matrices}
            lqer_names = sorted(matrices, key=lambda n: (-cost[n], n))[: cfg.lqer_top]
        lqer = set(lqer_names)
    if awq_groups is None:
        awq_groups = _awq_upper_bound(plans, tensors, roles, cfg, gated) if cfg.awq_top else {}
    out: dict[str, GroupBytes] = {}
    for name, plan in plans.items():
        shape = tensors[name][0]
        label, bits = group_of(plan, roles[name], name in gated, cfg)
        g = out.setdefault(label, GroupBytes(bits=bits))
        n = int(np.prod(shape))
        g.params += n
        if name in gated:
            g.exact["gates"] += gate_bytes(shape)
        elif plan.quantized:
            protected = awq_groups.get(name, 0) * cfg.awq_group * int(shape[0])
            g.integer_params += n - protected
            g.awq_params += protected
            g.exact["scales"] += plan.scale_bytes
            if protected:
                g.exact["awq"] += awq_bytes(shape, awq_groups[name])
            if name in lqer:
                g.exact["lqer"] += lqer_bytes(shape, cfg.lqer_rank, cfg.lqer_group)
        else:
            g.exact["floats"] += plan.float_bytes
    return out


def stored(tensors: list[EncodedTensor], roles: dict[str, str], cfg: PackConfig, quantizer: Quantizer,
           gates: set[str]) -> dict[str, GroupBytes]:
    """Per group, from what pack encoded (any integer layout)."""
    out: dict[str, GroupBytes] = {}
    for t in tensors:
        role = roles[t.name]
        gate = bool(cfg.gate_bits) and t.name in gates and t.encoding == "int_per_row"
        plan = quantizer.plan(t.name, t.shape, t.encoding != "raw", role, cfg)
        label, bits = group_of(plan, role, gate, cfg)
        g = out.setdefault(label, GroupBytes(bits=bits))
        n = int(np.prod(t.shape))
        g.params += n
        nbytes = {k: int(np.asarray(v).nbytes) for k, v in t.parts.items()}
        if gate:
            g.exact["gates"] += nbytes["q"] + nbytes["scale"]
        elif t.encoding in ("raw", "float"):
            g.exact["floats"] += nbytes["data"]
        else:
            protected = int(np.asarray(t.parts["awq_q"]).size) if "awq_q" in t.parts else 0
            g.integer_params += n - protected
            g.awq_params += protected
            g.exact["scales"] += nbytes["scale"]
            g.exact["lqer"] += sum(nbytes.get(k, 0) for k in LQER_PARTS)
            g.exact["awq"] += sum(nbytes.get(k, 0) for k in AWQ_EXACT_PARTS)
    return out


def lqer_matrices(tensors: list[EncodedTensor]) -> list[str]:
    """The matrices that carry LQER factors."""
    return [t.name for t in tensors if "lqer_a" in t.parts]


def awq_matrices(tensors: list[EncodedTensor]) -> dict[str, int]:
    """The matrices AWQ-lite protected groups of, and how many each."""
    return {t.name: int(np.asarray(t.parts["awq_start"]).size) for t in tensors if "awq_start" in t.parts}
