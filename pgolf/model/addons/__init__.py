"""Architecture add-ons, one module each, registered by name (see base.py for the hooks)."""

from __future__ import annotations

import importlib
import pkgutil

from torch import nn

from pgolf.config import ModelConfig, from_dict
from pgolf.model.addons.base import ADDONS, AddOn, ForwardContext, select_layers

__all__ = ["ADDONS", "AddOn", "ForwardContext", "build_addons", "select_layers", "load_all"]


def load_all() -> None:
    """Import every add-on module so each registers itself."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def build_addons(cfg: ModelConfig) -> nn.ModuleDict:
    load_all()
    built = []
    for name, table in cfg.addons.items():
        cls = ADDONS.get(name)
        addon_cfg = from_dict(cls.Config, table or {}, f"model.addons.{name}")
        built.append(cls(addon_cfg, cfg))
    built.sort(key=lambda a: (a.ORDER, type(a).__name__))
    return nn.ModuleDict({_name_of(a): a for a in built})


def _name_of(addon: AddOn) -> str:
    return next(n for n in ADDONS if ADDONS.get(n) is type(addon))
