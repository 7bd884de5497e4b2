"""Loading a preset for a run: read it (`pgolf.config.read_preset`), apply overrides, and check it
whole, so a mistake surfaces when it loads, not when a stage happens to read it.

Every choice field (a registered name or one of a fixed list, `pgolf.config.choice`) is checked
as the preset is read, in `from_dict` — the one parser of every table. The whole-preset checks need
the registries above the config floor: add-on options (each add-on's `Options`), `[pack]` settings
(`pgolf.quant.check`), `[evaluation]` methods and options (`pgolf.evaluate.methods.check`) and
`[train]` settings that depend on the model (`pgolf.train.check`).
Each failure is one ConfigError line naming where the preset came from and, where there is one,
the closest valid name.
"""

from __future__ import annotations

from pgolf.config import Preset, override, preset_origin, read_preset
from pgolf.errors import ConfigError
from pgolf.evaluate.methods.check import check_evaluation
from pgolf.quant.check import check_pack
from pgolf.train.check import check_context_schedule, check_packed_rows


def check_addons(preset: Preset) -> None:
    """Every add-on table parses into its add-on's options (names, types, choices), as the model
    build will parse it."""
    from pgolf.model.addons import ADDONS

    for name, table in preset.model.addons.items():
        ADDONS.options(name, table, f"model.addons.{name}")


def check_preset(preset: Preset) -> None:
    check_addons(preset)
    check_pack(preset)
    check_evaluation(preset)
    check_packed_rows(preset)
    check_context_schedule(preset)


def load_preset(name_or_path: str, overrides: list[str] | None = None) -> Preset:
    """A built-in preset by name, or a TOML file by path, with dotted overrides, checked whole."""
    preset = read_preset(name_or_path, overrides)
    try:
        check_preset(preset)
    except ConfigError as exc:
        raise ConfigError(f"{preset_origin(name_or_path)}: {exc}") from None
    return preset


def with_overrides(preset: Preset, overrides: list[str]) -> Preset:
    """A copy of `preset` with dotted overrides applied, checked like a loaded preset."""
    out = override(preset, overrides)
    check_preset(out)
    return out
