"""The baseline's optimizer split (techniques.md §2.2).

- Muon: every 2-D matrix inside the blocks that is not a control tensor;
- Adam (β 0.9/0.95, no weight decay): the tied embedding at `tied_embed_lr` (or the untied
  embedding at `embed_lr` and head at `head_lr`), and all vectors/scalars/control tensors
  (block scales, resid_mix, q_gain, skip weights) at `scalar_lr`.
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
    for name, p in model.named_parameters():
        if name.startswith("tok_emb"):
            groups["embed"].append((name, p))
        elif name.startswith("lm_head"):
            groups["head"].append((name, p))
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
    adam = torch.optim.Adam(adam_groups, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, fused=fused)
    muon = Muon([p for _, p in groups["matrix"]], lr=cfg.matrix_lr, momentum=cfg.muon_momentum,
                backend_steps=cfg.muon_backend_steps)
    optimizers: list[torch.optim.Optimizer] = [adam, muon]
    for opt in optimizers:
        for g in opt.param_groups:
            g["base_lr"] = g["lr"]
    return optimizers
