"""The GPT backbone of the naive baseline (techniques.md §2.1).

    x = rms(E[ids]); x0 = x
    encoder blocks 0..L//2-1 push their outputs; decoder blocks first add s_j ⊙ pop()
    logits = softcap · tanh(rms(x) Eᵀ / softcap)

With the default ModelConfig this has 17,059,912 parameters, the contest script's count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgolf.config import ModelConfig
from pgolf.model.blocks import Block, Linear, rms_norm

# Parameters matching these names are "control" tensors: optimised by Adam at the scalar LR and
# kept in fp32 / fp16 by the exporters, whatever their rank (the contest's CONTROL patterns).
CONTROL_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight")


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.num_encoder_layers = cfg.num_layers // 2
        self.num_decoder_layers = cfg.num_layers - self.num_encoder_layers
        num_skips = min(self.num_encoder_layers, self.num_decoder_layers)
        self.skip_weights = nn.Parameter(torch.ones(num_skips, cfg.model_dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.lm_head = None if cfg.tie_embeddings else Linear(cfg.model_dim, cfg.vocab_size, zero_init=True)
        self._init_embeddings()

    def _init_embeddings(self) -> None:
        if self.cfg.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, mean=0.0, std=self.cfg.tied_embed_init_std)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states (B, T, d), before the output projection."""
        x = rms_norm(self.tok_emb(ids))
        x0 = x
        skips: list[torch.Tensor] = []
        for block in self.blocks[: self.num_encoder_layers]:
            x = block(x, x0)
            skips.append(x)
        for j, block in enumerate(self.blocks[self.num_encoder_layers :]):
            if skips:
                x = x + self.skip_weights[j].to(x.dtype) * skips.pop()
            x = block(x, x0)
        return rms_norm(x)

    def logits_from_hidden(self, h: torch.Tensor) -> torch.Tensor:
        weight = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(h, weight.to(h.dtype))
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(logits / cap) if cap > 0 else logits

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None,
                reduction: str = "mean") -> torch.Tensor:
        """Logits (B, T, V) without targets; cross entropy in nats (fp32) with them.

        Training calls the module with targets so that wrappers (DDP, torch.compile) see the
        whole computation in one forward.
        """
        logits = self.logits_from_hidden(self.hidden(ids))
        if targets is None:
            return logits
        logits = logits.float()
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)
        return loss if reduction == "mean" else loss.view_as(targets)

    def loss(self, ids: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return self(ids, targets, reduction)


def is_control(name: str) -> bool:
    return any(p in name for p in CONTROL_PATTERNS)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
