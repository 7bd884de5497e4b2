"""`pgolf info` and the fit check before training: parameters per group, and the bytes a preset's
own pack settings imply for *trained* weights.

The projection is per tensor group, each figure with its source:
- what is stored as it is — small float tensors (<= 65,536 elements), the fp16 per-row scales, the
  int8 gate rows, LQER factors (of the `lqer_top` costliest matrices: an upper bound until pack
  picks them) — exact, from the quantizer's byte model (pgolf.quant.accounting), uncompressed;
- integer weights (the embedding and the block matrices): bytes per parameter after compression,
  taken from one published artifact: the preset's own `[reference] artifact_bytes` when it has
  one, else that of the built-in preset with the same matrix bits (int8: the naive baseline,
  int6: #549, int5: #700; the nearest, scaled by bits, for other widths). The source's integer
  B/param is (its artifact bytes - its code - its small tensors - its scales) / its integer
  parameters, embedding and matrices together as it packed them. Its code bytes are
  `[reference] artifact_code_bytes` where known, or a lower bound of them; where unknown they stay
  inside, conservative by their size. A group at other bits than the source's is scaled by bits;
- code: the preset's exported `train_gpt.py` in its wrapper, measured.
Trained weights compress far better than freshly initialised ones, so the bytes a dry run
measures on its untrained weights are shown beside this, not instead of it.
"""

from __future__ import annotations

import functools
import json

import torch

from pgolf.artifact.code_size import code_bytes
from pgolf.config import Preset, preset_from_dict, read_preset
from pgolf.model.roles import gate_tensors, model_on_meta, parameter_roles, report_group
from pgolf.quant.accounting import EXACT, GroupBytes, planned
from pgolf.quant.registry import get_quantizer

# Presets whose published artifact sizes are the B/param sources, by matrix bits.
SOURCE_PRESETS = {8: "naive-baseline", 6: "record-549", 5: "seed-700-hedge-crownq"}


def _meta_model(preset: Preset) -> torch.nn.Module:
    return model_on_meta(preset.model)


def planned_groups(preset: Preset, lqer_names: list[str] | None = None,
                   awq_groups: dict[str, int] | None = None) -> dict[str, GroupBytes]:
    """Per group, what the preset's quantizer and [pack] settings store (pgolf.quant.accounting):
    floats, scales, gate rows, LQER factors and AWQ-lite steps exactly, and how many weights are
    integers (at the group's bits, and AWQ-lite's at `pack.awq_bits`)."""
    model = _meta_model(preset)
    tensors = {name: (tuple(t.shape), t.is_floating_point()) for name, t in model.state_dict().items()}
    return planned(tensors, parameter_roles(model), preset.pack, get_quantizer(preset.pack.quant),
                   gate_tensors(model), lqer_names, awq_groups)


def byte_groups(preset: Preset) -> dict[str, dict]:
    """Per group: parameters, bits (0 = stored as it is), integer parameters and the exact bytes of
    what is not a compressed integer (floats, scales, gates, LQER)."""
    return {name: g.as_dict() for name, g in planned_groups(preset).items()}


@functools.lru_cache(maxsize=16)
def _source_ratio(source_name: str | None, preset_json: str | None = None) -> tuple[float, int, str]:
    """(compressed bytes per integer weight, matrix bits, description) of a published artifact."""
    source = preset_from_dict(json.loads(preset_json)) if preset_json else read_preset(source_name)
    artifact_bytes = int(source.reference["artifact_bytes"])
    # its code's bytes where known (or a lower bound of them), so they are not read as weights
    code = int(source.reference.get("artifact_code_bytes", 0))
    groups = byte_groups(source)
    bits = get_quantizer(source.pack.quant).bits
    integer = sum(g["integer_params"] + g["awq_params"] * source.pack.awq_bits / bits for g in groups.values())
    exact = sum(g["exact_bytes"] for g in groups.values())
    what = source.reference.get("artifact_source", source.name)
    code_note = f" - {code:,} B code" if code else ""
    note = (f"{what}: ({artifact_bytes:,} B{code_note} - {exact:,} B stored as they are) / "
            f"{integer:,.0f} integer params")
    return (artifact_bytes - code - exact) / integer, bits, note


def source_ratio(preset: Preset) -> tuple[float, int, str]:
    if preset.reference.get("artifact_bytes"):
        return _source_ratio(None, preset.to_json())
    bits = get_quantizer(preset.pack.quant).bits
    nearest = bits if bits in SOURCE_PRESETS else min(SOURCE_PRESETS, key=lambda b: abs(b - bits))
    return _source_ratio(SOURCE_PRESETS[nearest])


def projection(preset: Preset) -> dict:
    """Projected artifact bytes for trained weights under the preset's own pack settings."""
    ratio, src_bits, source = source_ratio(preset)
    awq_bits = preset.pack.awq_bits
    rows = {}
    for name, g in byte_groups(preset).items():
        if g["integer_params"]:
            scale = 1.0
            if name.startswith("matrices") and g["bits"] != src_bits:
                scale = g["bits"] / src_bits
            per_param = ratio * scale
            note = source + (f"; scaled by {g['bits']}/{src_bits} bits" if scale != 1.0 else "")
            projected = g["exact_bytes"] + g["integer_params"] * per_param
            if g["awq_params"]:  # AWQ-lite's protected columns: the source's rate scaled to their bits
                projected += g["awq_params"] * ratio * awq_bits / src_bits
                note += f"; {g['awq_params']:,} AWQ-lite params at {awq_bits}/{src_bits} of it"
        else:
            per_param, note = g["exact_bytes"] / max(g["params"], 1), "exact (stored as they are, uncompressed)"
            projected = g["exact_bytes"]
        rows[name] = {"params": g["params"], "bits": g["bits"], "bytes_per_param": per_param,
                      "projected_bytes": int(round(projected)), "source": note,
                      **{k: g[k] for k in EXACT if g[k]}}
    model = sum(r["projected_bytes"] for r in rows.values())
    code, code_what = code_bytes(preset)
    budget = preset.pack.budget_bytes
    return {"groups": rows, "model_bytes": model, "code_bytes": code, "code_counted": code_what,
            "total_bytes": model + code, "budget_bytes": budget, "headroom_bytes": budget - model - code,
            "fits": model + code <= budget, "integer_bytes_per_param": ratio, "source": source}


def preset_info(preset: Preset) -> dict:
    groups: dict[str, int] = {}
    roles: dict[str, int] = {}
    model = _meta_model(preset)
    for name, role in parameter_roles(model).items():
        n = model.get_parameter(name).numel()
        g = report_group(name, role)
        groups[g] = groups.get(g, 0) + n
        roles[role] = roles.get(role, 0) + n
    total = sum(groups.values())
    ref = preset.reference.get("params")
    proj = projection(preset)
    return {
        "preset": preset.name,
        "description": preset.description,
        "params_per_group": groups,
        "params_per_role": roles,
        "params_total": total,
        "reported_params": ref,
        "params_difference": (total - int(ref)) if ref else None,
        "reference_source": preset.reference.get("source"),
        "pack": {"quant": preset.pack.quant, "embedding_bits": preset.pack.embedding_bits,
                 "compressors": preset.pack.compressors or [preset.pack.compressor],
                 "code_wrapper": preset.pack.code_wrapper},
        "projection": proj,
        "estimated_model_bytes": proj["model_bytes"],
        "code_bytes": proj["code_bytes"],
        "estimated_total_bytes": proj["total_bytes"],
        "budget_bytes": proj["budget_bytes"],
        "estimated_headroom_bytes": proj["headroom_bytes"],
        "addons": sorted(preset.model.addons),
    }
