"""Where every registered component lives: one module map per kind, so a lookup imports only the
module it needs, and the exporter knows which files a preset's components need without importing
them.

A component module registers itself on import (`Registry.register` / a class's `name`); the
registry (`pgolf.registry.Registry`) imports the module named here the first time a name is
looked up. Adding a component = its module + one line here.

`ILLEGAL_METHODS` is the one statement of which evaluation methods break the contest's rules by
design (study fixtures, reproduced to measure them): their classes read `legal` from it, reports
label their numbers, and a submission never includes them.
"""

from __future__ import annotations

_METHODS = "pgolf.evaluate.methods."
# The matrix bits every per-row quantizer family is registered at (rtn-, gptq-lite-, gptq-intN).
QUANTIZER_BITS = (8, 6, 5)

MODULES: dict[str, dict[str, str]] = {
    "model add-on": {name: f"pgolf.model.addons.{name}" for name in (
        "asym_logit", "bigram_hash", "depth_recurrence", "doc_isolation", "dtg", "ln_scale", "orthogonal_init", "parallel_lanes",
        "partial_rope", "smear_gate", "smear_gate_v3", "sparse_attn_gate", "unet_skips", "value_embed",
        "value_residual", "xsa")},
    "evaluation method": {name: _METHODS + module for name, module in {
        "standard": "standard", "sliding": "sliding", "doc-sliding": "doc_sliding", "ttt": "ttt",
        "lora-ttt": "lora_ttt", "phased": "phased", "slot": "slot", "slot-causal": "slot",
        "hedge": "hedge", "hedge-flattened": "hedge", "hedge-normalized": "hedge_normalized",
        "ngram-tilt": "ngram_tilt", "illegal-ngram-tilt-gated": "ngram_tilt",
        "illegal-prequant-ttt": "illegal_ttt", "illegal-train-then-score-ttt": "illegal_ttt",
        "illegal-ngram-target-key": "illegal_mixers", "illegal-target-only-norm": "illegal_mixers",
        "illegal-late-unnormalized": "illegal_evasive", "illegal-late-train-first-ttt": "illegal_evasive",
        "illegal-late-peek": "illegal_evasive", "illegal-misreported-mixer": "illegal_evasive",
        "illegal-byte-ppm": "illegal_evasive", "illegal-val-warmup-lora-ttt": "illegal_warmup",
    }.items()},
    "activation": {name: "pgolf.model.activations" for name in ("relu2", "leaky_relu2")},
    "weight averaging": {name: "pgolf.train.averaging" for name in ("none", "ema", "swa", "polyak")},
    "text transform": {"caseops": "pgolf.data.transforms.caseops"},
    "compressor": {name: "pgolf.quant.compress" for name in ("zlib", "lzma", "zstd", "brotli", "pergroup")},
    "tensor encoding": {name: "pgolf.quant.encoding" for name in (
        "raw", "float", "int_per_tensor", "int_per_row", "int_per_row_packed", "int_per_row_t")},
    "quantizer": {"int8-rtn": "pgolf.quant.int8_rtn",
                  **{f"{family}-int{bits}": f"pgolf.quant.{module}"
                     for family, module in (("rtn", "rtn"), ("gptq-lite", "gptq_lite"), ("gptq", "gptq"))
                     for bits in QUANTIZER_BITS}},
}

ILLEGAL_METHODS = frozenset({
    "hedge", "slot",  # the seeds' entropy expert (not a distribution); published SLOT (fits on what it scores)
    *(name for name in MODULES["evaluation method"] if name.startswith("illegal-")),
})


def legal_methods(names: list[str]) -> list[str]:
    """The legal-by-design methods of `names` (`standard` when none is): what a submission scores
    with; the illegal ones are study fixtures and never enter a submission."""
    return [n for n in names if n not in ILLEGAL_METHODS] or ["standard"]


def module_file(module: str) -> str:
    """`pgolf.a.b` -> `a/b.py`, the path inside the package (what the exporter bundles)."""
    return "/".join(module.split(".")[1:]) + ".py"
