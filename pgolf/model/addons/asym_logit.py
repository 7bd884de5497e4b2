"""Asymmetric logit rescale (AsymLogit, #1923; in #1945, #2019, #2130, #2135): the logit softcap
with one learnable cap for positive logits and one for negative ones,

    z ↦ c₊·tanh(z / c₊)  (z ≥ 0),    c₋·tanh(z / c₋)  (z < 0),

both starting at the model's `logit_softcap`, where it is the backbone's softcap exactly. Two
scalars (kept as floats by pack); pointwise, so causal. The records' global TTT (SGD over every
weight) trains them too, and so does pgolf's phased method; the per-document LoRA adapts only its
adapters, as in the records.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pgolf.errors import ConfigError
from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("asym_logit")
class AsymLogit(AddOn):
    @dataclass
    class Options:
        init: float = 0.0  # the caps' start (0: the model's logit_softcap)

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        start = cfg.init or model_cfg.logit_softcap
        if start <= 0:
            raise ConfigError("model.addons.asym_logit needs a positive model.logit_softcap or init")
        self.pos_cap = nn.Parameter(torch.tensor(float(start)))
        self.neg_cap = nn.Parameter(torch.tensor(float(start)))

    def parameter_role(self, param_name: str) -> str:
        return "control"

    def softcap(self, logits: torch.Tensor, cap: float) -> torch.Tensor:
        pos = self.pos_cap.to(logits.dtype)
        neg = self.neg_cap.to(logits.dtype)
        return torch.where(logits >= 0, pos * torch.tanh(logits / pos), neg * torch.tanh(logits / neg))
