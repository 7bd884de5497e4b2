"""Transformer pieces of the naive baseline: rotary embedding, GQA attention, MLP, block.

All RMSNorms are parameter-free (`F.rms_norm`). Output projections are zero-initialised (flagged
with `zero_init`) so each block starts as the identity on the residual stream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgolf.config import ModelConfig
from pgolf.model.activations import ACTIVATIONS


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


class Linear(nn.Linear):
    """nn.Linear without bias; keeps fp32 weights, autocast picks the compute dtype."""

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.zero_init = zero_init
        if zero_init:
            nn.init.zeros_(self.weight)


class Rotary(nn.Module):
    """RoPE over the full head dimension, pairing dims (i, i + D/2) ("half-split")."""

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache: tuple[int, torch.device, torch.Tensor, torch.Tensor] | None = None

    def forward(self, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        c = self._cache
        if c is None or c[0] != seq_len or c[1] != device:
            t = torch.arange(seq_len, device=device, dtype=self.inv_freq.dtype)
            freqs = torch.outer(t, self.inv_freq.to(device))
            c = (seq_len, device, freqs.cos()[None, None], freqs.sin()[None, None])
            self._cache = c
        return c[2], c[3]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):
    """GQA attention with RMS-normalised q/k, RoPE and a learned per-head q gain (init 1.5)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, h, hkv = cfg.model_dim, cfg.num_heads, cfg.num_kv_heads
        if d % h or h % hkv:
            raise ValueError(f"model_dim {d} / num_heads {h} / num_kv_heads {hkv} do not divide")
        self.num_heads, self.num_kv_heads, self.head_dim = h, hkv, d // h
        if self.head_dim % 2:
            raise ValueError(f"head dim {self.head_dim} must be even for RoPE")
        self.c_q = Linear(d, d)
        self.c_k = Linear(d, hkv * self.head_dim)
        self.c_v = Linear(d, hkv * self.head_dim)
        self.proj = Linear(d, d, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((h,), float(cfg.qk_gain_init)))
        self.rotary = Rotary(self.head_dim, cfg.rope_base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bsz, seq, dim = x.shape
        q = self.c_q(x).view(bsz, seq, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.c_k(x).view(bsz, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.c_v(x).view(bsz, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = rms_norm(q), rms_norm(k)
        cos, sin = self.rotary(seq, x.device)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads
        )
        return self.proj(y.transpose(1, 2).reshape(bsz, seq, dim))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        hidden = int(round(cfg.mlp_mult * cfg.model_dim))
        self.fc = Linear(cfg.model_dim, hidden)
        self.proj = Linear(hidden, cfg.model_dim, zero_init=True)
        self.activation = ACTIVATIONS.get(cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.activation(self.fc(x)))


class Block(nn.Module):
    """h = m0·x + m1·x0;  h += a·Attn(rms(h));  h += b·MLP(rms(h))  (per-channel m, a, b)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.model_dim
        self.attn = CausalSelfAttention(cfg)
        self.mlp = MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(d))
        self.mlp_scale = nn.Parameter(torch.ones(d))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d))))

    def forward(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x))
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x))
