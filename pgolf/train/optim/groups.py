"""The baseline's optimizer split (docs/techniques.md), extended to add-ons and weight decay,
read from the model's parameter roles (`pgolf.model.roles`):

- Muon: role `matrix` (the 2-D weights inside the blocks that are not control tensors);
- Adam (β 0.9/0.95; AdamW with decoupled decay when `adam_weight_decay > 0`, and
  `embed_weight_decay` ≥ 0 on the embedding group alone): roles `embedding`
  and `table` at `tied_embed_lr` (or `embed_lr` when untied), `head` at `head_lr`, and `scalar`
  and `control` at `scalar_lr`.
Each param group remembers its `base_lr`; the schedule multiplies it every step.
"""

from __future__ import annotations

import torch
from torch import nn

from pgolf.config import TrainConfig
from pgolf.model.roles import parameter_roles
from pgolf.train.optim.muon import Muon


GROUP_OF_ROLE = {"embedding": "embed", "table": "embed", "head": "head", "matrix": "matrix",
                 "scalar": "scalar", "control": "scalar"}


def split_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {"matrix": [], "scalar": [], "embed": [], "head": []}
    roles = parameter_roles(model)
    for name, p in model.named_parameters():
        groups[GROUP_OF_ROLE[roles[name]]].append((name, p))
    return groups


def build_optimizers(model: nn.Module, cfg: TrainConfig, tied: bool,
                     momentum_dtype: torch.dtype | None = None) -> list[torch.optim.Optimizer]:
    """`momentum_dtype`: Muon's momentum buffers (None: the gradients' fp32). Adam's moments take
    each parameter's own dtype (a bf16 embedding gets bf16 moments)."""
    groups = split_parameters(model)
    fused = next(model.parameters()).is_cuda
    adam_groups = [
        {"params": [p for _, p in groups["embed"]], "lr": cfg.tied_embed_lr if tied else cfg.embed_lr},
        {"params": [p for _, p in groups["scalar"]], "lr": cfg.scalar_lr},
    ]
    if cfg.embed_weight_decay >= 0:  # the frontier's own decay on the embedding (0.085 vs 0.02)
        adam_groups[0]["weight_decay"] = cfg.embed_weight_decay
    if groups["head"]:
        adam_groups.append({"params": [p for _, p in groups["head"]], "lr": cfg.head_lr})
    adam_groups = [g for g in adam_groups if g["params"]]
    adam_kwargs = dict(betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, fused=fused)
    if cfg.adam_weight_decay > 0 or cfg.embed_weight_decay > 0:
        adam = torch.optim.AdamW(adam_groups, weight_decay=cfg.adam_weight_decay, **adam_kwargs)
    else:
        adam = torch.optim.Adam(adam_groups, **adam_kwargs)
    muon = Muon([p for _, p in groups["matrix"]], lr=cfg.matrix_lr, momentum=cfg.muon_momentum,
                backend_steps=cfg.muon_backend_steps, weight_decay=cfg.muon_weight_decay,
                row_normalize=cfg.muon_row_normalize, coefficients=cfg.muon_coefficients,
                momentum_dtype=momentum_dtype)
    optimizers: list[torch.optim.Optimizer] = [adam, muon]
    for opt in optimizers:
        for g in opt.param_groups:
            g["base_lr"] = g["lr"]
    return optimizers
