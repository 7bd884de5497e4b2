"""The `[pack]` checks of a whole preset (run when a preset loads, `pgolf.job.preset`) beyond the
names of its choice fields (quantizer, compressors, layouts, formats, checked as the preset is read,
`pgolf.config.choice`): every setting is one the chosen quantizer can honour, and GPTQ presets
calibrate inside the training cap."""

from __future__ import annotations

from pgolf.config import Preset
from pgolf.errors import ConfigError, did_you_mean
from pgolf.quant.gptq_lite import SDCLIP_GROUPS
from pgolf.quant.registry import get_quantizer
# The contest accepted an 8 s reserve as enough to finish GPTQ Hessians inside the cap (after #1868).
MIN_GPTQ_RESERVE_SECONDS = 8.0


def _one_of(value: str, valid: tuple[str, ...] | list[str], where: str) -> None:
    if value not in valid:
        raise ConfigError(f"{where} = {value!r} is not valid{did_you_mean(value, valid)} (valid: {', '.join(valid)})")


def check_pack(preset: Preset) -> None:
    """Every `[pack]` setting is one the quantizer, compressors and code wrapper can honour."""
    pack, train = preset.pack, preset.train
    quantizer = get_quantizer(pack.quant)  # its name (a choice field) was checked when the preset was read
    for group, k in pack.sdclip_k.items():
        _one_of(group, SDCLIP_GROUPS, "pack.sdclip_k key")
        if not isinstance(k, (int, float)) or k <= 0:
            raise ConfigError(f"pack.sdclip_k.{group} = {k!r}: a positive number of standard deviations")
    if pack.gptq_embedding and not (quantizer.needs_hessians and preset.model.tie_embeddings):
        raise ConfigError("pack.gptq_embedding needs a gptq-intN quantizer and tied embeddings "
                          "(the embedding's Hessian is the output head's input)")
    if not quantizer.reads("embedding_bits") and pack.embedding_bits != quantizer.bits:
        raise ConfigError(f"pack.embedding_bits = {pack.embedding_bits}: {pack.quant} writes every matrix at "
                          f"{quantizer.bits} bits; choose rtn-/gptq-lite-/gptq-intN for other bits")
    if not 5 <= pack.embedding_bits <= 8:
        raise ConfigError(f"pack.embedding_bits = {pack.embedding_bits}: must be 5..8")
    if not 0.0 <= pack.magnitude_prune < 1.0:
        raise ConfigError(f"pack.magnitude_prune = {pack.magnitude_prune}: a fraction in [0, 1)")
    if pack.gate_bits and not 2 <= pack.gate_bits <= 8:
        raise ConfigError(f"pack.gate_bits = {pack.gate_bits}: 0 (keep gates in float) or 2..8")
    if pack.lqer_rank < 0 or pack.lqer_top < 0 or pack.lqer_group <= 0:
        raise ConfigError(f"pack.lqer_rank / lqer_top must be >= 0 and pack.lqer_group > 0 "
                          f"(got {pack.lqer_rank}, {pack.lqer_top}, {pack.lqer_group})")
    if pack.awq_top < 0 or pack.awq_group <= 0 or not 2 <= pack.awq_bits <= 8:
        raise ConfigError(f"pack.awq_top must be >= 0, pack.awq_group > 0 and pack.awq_bits 2..8 "
                          f"(got {pack.awq_top}, {pack.awq_group}, {pack.awq_bits})")
    if pack.awq_top and not quantizer.reads("awq_top"):
        raise ConfigError(f"pack.awq_top = {pack.awq_top}: AWQ-lite ranks groups by the calibration Hessians; "
                          f"it needs a gptq-intN quantizer, not {pack.quant!r}")
    if pack.budget_bytes <= 0:
        raise ConfigError(f"pack.budget_bytes = {pack.budget_bytes}: must be positive")
    if quantizer.needs_hessians:
        if train.gptq_calibration_sequences <= 0:
            raise ConfigError(
                f"pack.quant = {pack.quant!r} needs calibration Hessians collected inside the training cap: "
                "set train.gptq_calibration_sequences (and train.gptq_reserve_seconds)")
        if train.max_wallclock_seconds > 0 and train.gptq_reserve_seconds < MIN_GPTQ_RESERVE_SECONDS:
            raise ConfigError(
                f"train.gptq_reserve_seconds = {train.gptq_reserve_seconds:g}: GPTQ calibration on the training "
                f"clock needs a reserve of at least {MIN_GPTQ_RESERVE_SECONDS:g} s")
