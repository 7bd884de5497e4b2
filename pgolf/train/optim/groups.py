"""The baseline's optimizer split (techniques.md §2.2), extended to add-ons and weight decay.

- Muon: every 2-D matrix inside the blocks that is not a control tensor;
- Adam (β 0.9/0.95; AdamW with decoupled decay when `adam_weight_decay > 0`): the tied embedding
  at `tied_embed_lr` (or the untied embedding at `embed_lr` and head at `head_lr`), and all
  vectors/scalars/control tensors at `scalar_lr`;
- add-on parameters go where their add-on's `optim_group` says ("embed", "scalar" or "matrix").
Each param group remembers its `base_lr`; the schedule multiplies it every step.
"""

from __future__ import annotations

import torch
from torch import nn

from pgolf.config import TrainConfig
from pgolf.model.gpt import is_control
from pgolf.train.optim.muon import Muon


def split_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {"matrix": [], "scalar": [], "embed": [], "head": []}
    addons = getattr(model, "addons", {})
    for name, p in model.named_parameters():
        if name.startswith("tok_emb"):
            groups["embed"].append((name, p))
        elif name.startswith("lm_head"):
            groups["head"].append((name, p))
        elif name.startswith("addons."):
            _, addon, rest = name.split(".", 2)
            groups[addons[addon].optim_group(rest)].append((name, p))
        elif name.startswith("blocks.") and p.ndim == 2 and not is_control(name):
            groups["matrix"].append((name, p))
        else:
            groups["scalar"].append((name, p))
    return groups


def build_optimizers(model: nn.Module, cfg: TrainConfig, tied: bool) -> list[torch.optim.Optimizer]:
    groups = split_parameters(model)
    fused = next(model.parameters()).is_cuda
    adam_groups = [
        {"params": [p for _, p in groups["embed"]], "lr": cfg.tied_embed_lr if tied else cfg.embed_lr},
        {"params": [p for _, p in groups["scalar"]], "lr": cfg.scalar_lr},
    ]
    if groups["head"]:
        adam_groups.append({"params": [p for _, p in groups["head"]], "lr": cfg.head_lr})
    adam_groups = [g for g in adam_groups if g["params"]]
    adam_kwargs = dict(betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, fused=fused)
    if cfg.adam_weight_decay > 0:
        adam = torch.optim.AdamW(adam_groups, weight_decay=cfg.adam_weight_decay, **adam_kwargs)
    else:
        adam = torch.optim.Adam(adam_groups, **adam_kwargs)
    muon = Muon([p for _, p in groups["matrix"]], lr=cfg.matrix_lr, momentum=cfg.muon_momentum,
                backend_steps=cfg.muon_backend_steps, weight_decay=cfg.muon_weight_decay)
    optimizers: list[torch.optim.Optimizer] = [adam, muon]
    for opt in optimizers:
        for g in opt.param_groups:
            g["base_lr"] = g["lr"]
    return optimizers
