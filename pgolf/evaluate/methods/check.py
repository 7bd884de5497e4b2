"""The `[evaluation]` checks of a whole preset (run when a preset loads, `pgolf.job.preset`, and
when `pgolf eval`/`pgolf audit` apply overrides): every method named exists, and every key of
every options table is one of a method's options."""

from __future__ import annotations

from pgolf.config import Preset, from_dict
from pgolf.errors import ConfigError, did_you_mean
from pgolf.evaluate.methods.base import load_methods

# Top-level `[evaluation]` keys that are not a method's options table.
EVALUATION_KEYS = ("methods", "temperature")


def check_evaluation(preset: Preset) -> None:
    ev = preset.evaluation
    methods = ev.get("methods", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise ConfigError(f"evaluation.methods must be a list of method names, got {methods!r}")
    registry = load_methods(None)  # every method, so every options table can be checked
    for name in methods:
        registry.get(name)
    options_of: dict[str, list[type]] = {}
    for name in registry:
        cls = registry.get(name)
        options_of.setdefault(cls.section, []).append(cls.Options)
    valid = list(EVALUATION_KEYS) + sorted(options_of)
    for key, table in ev.items():
        if key in EVALUATION_KEYS:
            continue
        if key not in options_of:
            raise ConfigError(f"unknown key 'evaluation.{key}'{did_you_mean(key, valid)} (valid: {', '.join(valid)})")
        if not isinstance(table, dict):
            raise ConfigError(f"evaluation.{key} must be a table of options, got {table!r}")
        errors = []
        for options in dict.fromkeys(options_of[key]):  # a section shared by methods with one options class
            try:
                from_dict(options, table, f"evaluation.{key}")
                break
            except ConfigError as exc:
                errors.append(str(exc))
        else:
            raise ConfigError(errors[0])
