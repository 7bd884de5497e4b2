"""`pgolf pack RUN`: quantize a run's final weights, compress, write the artifact and account
for every byte against the budget."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from pgolf.artifact.code_size import code_bytes
from pgolf.artifact.format import Artifact, encode_artifact
from pgolf.config import override, preset_from_dict
from pgolf.quant.compress import COMPRESSORS, available
from pgolf.errors import BudgetError, PgolfError
from pgolf.quant.layout import check_layouts, relayout
from pgolf.quant.registry import get_quantizer
from pgolf.io import atomic_write_bytes
from pgolf.model.roles import gate_tensors, model_on_meta, parameter_roles, report_group
from pgolf.quant.accounting import awq_matrices, lqer_matrices, stored
from pgolf.quant.gate_int8 import quantize_gates
from pgolf.quant.lqer import add_lqer
from pgolf.train.checkpoint import load_checkpoint
from pgolf.rundir import ARTIFACT_FILE


TIMED_CALIBRATION_KEYS = ("seconds", "train_time_ms_at_end")


def pack_run(run_dir: str | Path, out: str | Path | None = None, quant: str | None = None,
             compressor: str | None = None, budget: int | None = None,
             allow_over_budget: bool = False, overrides: list[str] | None = None,
             pergroup_backends: list[str] | None = None, only_layouts: list[str] | None = None) -> dict:
    """`overrides`: dotted `pack.*` settings that replace the run's own (the artifact records them).
    `pergroup_backends`: the pergroup compressor codes each group with these backends only — its
    bytes then bound the full search's from above (each group's smallest over fewer backends is no
    smaller), for a dry run that needs the bound, not the last byte (pgolf.job.dryrun); `only_layouts`
    likewise tries these of the preset's layouts only."""
    run_dir = Path(run_dir)
    weights, state = load_checkpoint(run_dir)
    preset = state["preset"]
    preset_obj = preset_from_dict(preset)
    if overrides:
        from pgolf.quant.check import check_pack

        if any(not o.startswith("pack.") for o in overrides):
            raise PgolfError(f"pack overrides set [pack] only, got {overrides}")
        preset_obj = override(preset_obj, overrides)
        check_pack(preset_obj)
        preset = preset_obj.to_dict()
    pack_cfg = preset_obj.pack
    quant = quant or pack_cfg.quant
    if compressor == "best":
        candidates = [c for c in COMPRESSORS.names() if available(c)]  # "best" of what is installed
    elif compressor:
        candidates = [compressor]
    else:
        candidates = pack_cfg.compressors or [pack_cfg.compressor]
    layouts = pack_cfg.layouts or ["packed"]
    if only_layouts:
        layouts = [x for x in layouts if x in only_layouts] or layouts
    check_layouts(layouts)
    budget = budget if budget is not None else pack_cfg.budget_bytes
    quantizer = get_quantizer(quant)
    hessians, calibration = None, None
    if quantizer.needs_hessians:
        from pgolf.quant.calibration import load_hessians

        hessians, calibration = load_hessians(run_dir)
    model = model_on_meta(preset_obj.model)
    roles = parameter_roles(model)
    tensors = quantizer(weights, pack_cfg, roles, hessians=hessians)
    lqer: dict[str, float] = {}
    if pack_cfg.lqer_rank and pack_cfg.lqer_top:
        tensors, lqer = add_lqer(tensors, weights, pack_cfg.lqer_rank, pack_cfg.lqer_top, pack_cfg.lqer_group)
    if pack_cfg.gate_bits:
        tensors = quantize_gates(tensors, weights, gate_tensors(model), pack_cfg.gate_bits)
    # What the artifact says of its making: the data it trained on and the calibration's provenance.
    # Nothing timed or machine-bound (wallclocks, the run's path) goes in, so the same run packs to
    # the same bytes wherever and whenever it is packed (a rerun after a crash is bit-identical).
    meta = {"data": state.get("data", {}),
            "calibration": {k: v for k, v in (calibration or {}).items() if k not in TIMED_CALIBRATION_KEYS} or None}
    sizes: dict[str, int] = {}  # best over layouts, per compressor
    layout_sizes: dict[str, int] = {}  # every (compressor, layout) tried
    best: bytes | None = None
    # Every (layout, compressor) candidate side by side, and the code's size beside them: the
    # compressors run outside the GIL, so a machine's cores shorten pack's longest step; the choice
    # is made in the fixed order below, so it does not depend on which finishes first.
    coders = {}
    if pergroup_backends:
        from pgolf.quant.pergroup import pergroup_compress

        coders["pergroup"] = partial(pergroup_compress, backends=list(pergroup_backends))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        code_job = pool.submit(code_bytes, preset_obj)
        jobs = {}
        for layout in layouts:
            laid_out = relayout(tensors, layout)
            for name in candidates:
                artifact = Artifact(preset=preset, quant=quant, tensors=laid_out, compressor=name, meta=meta)
                jobs[layout, name] = pool.submit(encode_artifact, artifact, coders.get(name))
        for (layout, name), job in jobs.items():
            blob = job.result()
            layout_sizes[f"{name}/{layout}"] = len(blob)
            sizes[name] = min(sizes.get(name, len(blob)), len(blob))
            if best is None or len(blob) < len(best):
                best, compressor, chosen_layout = blob, name, layout
        code, code_what = code_job.result()
    out = Path(out) if out else run_dir / ARTIFACT_FILE
    model_bytes = len(best)
    groups: dict[str, int] = {}
    for t in tensors:
        g = report_group(t.name, roles[t.name])
        groups[g] = groups.get(g, 0) + t.nbytes
    total = code + model_bytes
    if total > budget and not allow_over_budget:  # nothing over budget is written unless asked for
        largest = sorted(groups.items(), key=lambda kv: -kv[1])[:3]
        names = ", ".join(f"{g} {n:,} B raw" for g, n in largest)
        raise BudgetError(
            f"{out}: {total:,} bytes would be over the {budget:,}-byte budget by {total - budget:,} "
            f"(largest groups: {names}); nothing was written; pass --allow-over-budget to keep it"
        )
    atomic_write_bytes(out, best)
    report = {
        "artifact": str(out),
        "quant": quant,
        "compressor": compressor,
        "layout": chosen_layout,
        "compressed_sizes": sizes,
        "pergroup_backends": list(pergroup_backends) if pergroup_backends and "pergroup" in sizes else None,
        "layouts_tried": layouts,
        "layout_sizes": layout_sizes,
        "code_bytes": code,
        "code_counted": code_what,
        "code_wrapper": pack_cfg.code_wrapper,
        "model_bytes": model_bytes,
        "total_bytes": total,
        "budget_bytes": budget,
        "headroom_bytes": budget - total,
        "raw_bytes_per_group": groups,
        # floats, scales, gate rows, LQER factors and AWQ-lite parts as stored, per group
        # (pgolf.quant.accounting): what `pgolf info` projects, byte for byte, given these LQER and
        # AWQ-lite matrices
        "stored_bytes_per_group": {k: g.as_dict() for k, g in
                                   stored(tensors, roles, pack_cfg, quantizer, gate_tensors(model)).items()},
        "lqer_matrices": lqer_matrices(tensors),
        "awq_groups": awq_matrices(tensors),
        "fits": total <= budget,
        "calibration": calibration,
        "lqer_error_norms": lqer,
    }
    return report
