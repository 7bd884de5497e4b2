"""Training FLOPs per token, for MFU.

6·N per token for the matrix multiplies (forward 2·N, backward 4·N), N counting every Linear
weight and the output head (the tied embedding used as a V×d matmul), but not embedding-table
lookups (token, BigramHash, value-embedding tables); plus causal attention 6·L·d_q·T per token
(PaLM's 12·L·d·T halved for the causal mask). Elementwise work is not counted, as usual.
"""

from __future__ import annotations

from torch import nn

from pgolf.config import ModelConfig


def matmul_params(model: nn.Module, cfg: ModelConfig) -> int:
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    head = 0 if not cfg.tie_embeddings else cfg.vocab_size * cfg.model_dim
    return linear + head


def train_flops_per_token(model: nn.Module, cfg: ModelConfig, seq_len: int) -> float:
    attention = 6.0 * cfg.num_layers * cfg.model_dim * seq_len
    return 6.0 * matmul_params(model, cfg) + attention
