"""Architecture add-ons, one module each, registered by name (see base.py for the hooks)."""

from __future__ import annotations

from torch import nn

from pgolf.config import ModelConfig
from pgolf.model.addons.base import ADDONS, AddOn, ForwardContext, select_layers

__all__ = ["ADDONS", "AddOn", "ForwardContext", "build_addons", "select_layers", "load_all"]


def load_all() -> None:
    """Import every add-on module so each registers itself."""
    ADDONS.load()


def build_addons(cfg: ModelConfig) -> nn.ModuleDict:
    built = [ADDONS.get(name)(ADDONS.options(name, table, f"model.addons.{name}"), cfg)
             for name, table in cfg.addons.items()]
    built.sort(key=lambda a: (a.ORDER, type(a).__name__))
    return nn.ModuleDict({a.name: a for a in built})
