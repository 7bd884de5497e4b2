"""What each parameter of a model is, said once: the optimizer groups (`train/optim/groups.py`),
the mixed-precision quantizers (`quant/mixed.py`, `quant/int8_rtn.py`), pack's group report and
`pgolf info` all read this table instead of matching names themselves.

    embedding  the token embedding (the output head too when tied)   Adam, embedding LR; pack.embedding_bits
    head       the untied output head                                 Adam, head LR; pack.embedding_bits
    matrix     a 2-D weight inside the blocks                         Muon; the quantizer's bits
    table      an add-on's lookup table (BigramHash, VE)              Adam, embedding LR; the quantizer's bits
    scalar     vectors, gains, an add-on's small projections          Adam, scalar LR; small -> pack.small_float
    control    the contest's control tensors (scales, mixes, gains,   Adam, scalar LR; small -> pack.control_float
               skip weights), whatever their rank

Backbone parameters get their role from the rules below; an add-on states the role of each of its
own parameters (`AddOn.parameter_role`). `parameter_roles` asserts every parameter has exactly one.
"""

from __future__ import annotations

import torch
from torch import nn

ROLES = ("embedding", "head", "matrix", "table", "scalar", "control")
# The contest's CONTROL patterns: these tensors are optimised at the scalar LR and kept in float.
CONTROL_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight")


def backbone_role(name: str, ndim: int) -> str:
    if name.startswith("tok_emb."):
        return "embedding"
    if name.startswith("lm_head."):
        return "head"
    if any(p in name for p in CONTROL_PATTERNS):
        return "control"
    if name.startswith("blocks.") and ndim == 2:
        return "matrix"
    return "scalar"


def parameter_roles(model: nn.Module) -> dict[str, str]:
    """name -> role for every parameter of `model` (a GPT, possibly wrapped by DDP/compile)."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    addons = getattr(inner, "addons", {})
    roles: dict[str, str] = {}
    for name, p in inner.named_parameters():
        if name.startswith("addons."):
            _, addon, rest = name.split(".", 2)
            role = addons[addon].parameter_role(rest)
        else:
            role = backbone_role(name, p.ndim)
        assert role in ROLES, f"{name}: role {role!r} is not one of {ROLES}"
        assert name not in roles, f"{name}: two roles"
        roles[name] = role
    return roles


def model_on_meta(model_cfg):
    """The model a config builds, on the meta device: its structure without memory or init cost."""
    from pgolf.model.gpt import GPT

    with torch.device("meta"):
        return GPT(model_cfg)


def roles_of_config(model_cfg) -> dict[str, str]:
    """The role table of the model a config builds."""
    return parameter_roles(model_on_meta(model_cfg))


def gate_tensors(model) -> set[str]:
    """State-dict names of the parameters the model's add-ons declare as gates (`GATE_PARAMETERS`)."""
    return {f"addons.{name}.{param}" for name, addon in getattr(model, "addons", {}).items()
            for param in type(addon).GATE_PARAMETERS}


def report_group(name: str, role: str) -> str:
    """The group a tensor is reported under (pack's bytes per group, `pgolf info`)."""
    if name.startswith("addons."):
        return "addon:" + name.split(".")[1]
    if role in ("embedding", "head"):
        return "embedding"
    if ".attn." in name and role == "matrix":
        return "attention"
    if ".mlp." in name and role == "matrix":
        return "mlp"
    return "block scalars"
