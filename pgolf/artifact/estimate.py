"""`pgolf info`: parameters per group and the artifact size a preset implies, before training.

The int6 estimate is the packed size before compression, by the mixed-precision policy the
seeds use (techniques.md §5.2): tensors of ≤ 65,536 elements kept as fp16 (fp32 for control
tensors); the token embedding int8 per row; every other matrix int6 per row, bit-packed
(6 bits per weight); one fp16 scale per row. Compression usually shrinks it further, by an
amount that depends on the trained weights, so it is not guessed here.
"""

from __future__ import annotations

import torch

from pgolf.artifact.code_size import code_bytes
from pgolf.artifact.pack import parameter_group
from pgolf.config import Preset
from pgolf.model.gpt import GPT, is_control
from pgolf.quant.mixed import KEEP_FLOAT_MAX_NUMEL



def tensor_bytes(name: str, t: torch.Tensor, matrix_bits: int = 6, embed_bits: int = 8) -> float:
    n = t.numel()
    if n <= KEEP_FLOAT_MAX_NUMEL:
        return n * (4 if is_control(name) else 2)
    rows = t.shape[0] if t.ndim == 2 else 1
    bits = embed_bits if name.startswith("tok_emb") else matrix_bits
    return n * bits / 8 + rows * 2


def preset_info(preset: Preset, matrix_bits: int = 6) -> dict:
    with torch.device("meta"):
        model = GPT(preset.model)
    groups: dict[str, int] = {}
    est: dict[str, float] = {}
    for name, p in model.named_parameters():
        g = parameter_group(name)
        groups[g] = groups.get(g, 0) + p.numel()
        est[g] = est.get(g, 0.0) + tensor_bytes(name, p, matrix_bits)
    total = sum(groups.values())
    code, _ = code_bytes()
    model_bytes = int(round(sum(est.values())))
    ref = preset.reference.get("params")
    return {
        "preset": preset.name,
        "description": preset.description,
        "params_per_group": groups,
        "params_total": total,
        "reported_params": ref,
        "params_difference": (total - int(ref)) if ref else None,
        "reference_source": preset.reference.get("source"),
        "estimate_bits": {"matrices": matrix_bits, "embedding": 8, "small": "fp16/fp32"},
        "estimated_model_bytes": model_bytes,
        "estimated_bytes_per_group": {g: int(round(b)) for g, b in est.items()},
        "code_bytes": code,
        "estimated_total_bytes": model_bytes + code,
        "budget_bytes": preset.pack.budget_bytes,
        "estimated_headroom_bytes": preset.pack.budget_bytes - model_bytes - code,
        "addons": sorted(preset.model.addons),
    }
