"""Transformer pieces of the backbone: rotary embedding, GQA attention, MLP, block.

All RMSNorms are parameter-free (`F.rms_norm`). Output projections are zero-initialised (flagged
with `zero_init`) so each block starts as the identity on the residual stream. Add-ons act only
through the hooks listed in `pgolf.model.addons.base`; nothing here names a technique.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgolf.config import ModelConfig
from pgolf.errors import ConfigError
from pgolf.model.activations import ACTIVATIONS


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


class Linear(nn.Linear):
    """nn.Linear without bias; keeps fp32 weights, autocast picks the compute dtype.

    `weight_transform` (None by default) maps the weight before use — how training-side
    techniques such as fake quantization act without the model naming them. It is an instance
    attribute, so torch.compile guards on it and recompiles when it changes.
    """

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.zero_init = zero_init
        self.weight_transform = None
        if zero_init:
            nn.init.zeros_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.weight_transform is None else self.weight_transform(self.weight)
        return F.linear(x, w)


class Rotary(nn.Module):
    """RoPE on the first `dims` dims of each head (all by default), pairing (i, i + dims/2).

    `ntk_train_seq_len > 0` applies the #315-lineage NTK base scaling for sequences longer than
    it: base' = base · (T / ntk_train_seq_len)^(dims / (dims − 2)).
    """

    def __init__(self, head_dim: int, base: float, dims: int = 0, ntk_train_seq_len: int = 0) -> None:
        super().__init__()
        self.dims = dims or head_dim
        if self.dims % 2 or self.dims > head_dim:
            raise ConfigError(f"rotary dims {self.dims} must be even and <= the head dim {head_dim} "
                              "(model.addons.partial_rope.dims)")
        self.base, self.ntk_train_seq_len = base, ntk_train_seq_len

    def _cos_sin(self, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Recomputed every call (T×dims/2 numbers, fused away under compile): a Python-side cache
        # mutated inside forward would make torch.compile guard on it and recompile.
        base = self.base
        if self.ntk_train_seq_len and seq_len > self.ntk_train_seq_len:
            base = base * (seq_len / self.ntk_train_seq_len) ** (self.dims / (self.dims - 2))
        inv_freq = 1.0 / (base ** (torch.arange(0, self.dims, 2, dtype=torch.float32, device=device) / self.dims))
        freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
        return freqs.cos()[None, None], freqs.sin()[None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cos, sin = self._cos_sin(x.size(-2), x.device)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        half = self.dims // 2
        x1, x2 = x[..., :half], x[..., half : self.dims]
        rotated = (x1 * cos + x2 * sin, x2 * cos - x1 * sin)
        if self.dims == x.size(-1):
            return torch.cat(rotated, dim=-1)
        return torch.cat((*rotated, x[..., self.dims :]), dim=-1)


class CausalSelfAttention(nn.Module):
    """GQA attention with RMS-normalised q/k, RoPE and a learned per-head q gain."""

    def __init__(self, cfg: ModelConfig, layer: int, addons: list) -> None:
        super().__init__()
        d, h, hkv = cfg.model_dim, cfg.num_heads, cfg.num_kv_heads
        if d % h or h % hkv:
            raise ConfigError(f"model.model_dim {d}, model.num_heads {h}, model.num_kv_heads {hkv}: model_dim must be "
                              "a multiple of num_heads, and num_heads of num_kv_heads")
        self.layer = layer
        self.num_heads, self.num_kv_heads, self.head_dim = h, hkv, d // h
        if self.head_dim % 2:
            raise ConfigError(f"head dim model_dim/num_heads = {self.head_dim} must be even for RoPE")
        self.c_q = Linear(d, d)
        self.c_k = Linear(d, hkv * self.head_dim)
        self.c_v = Linear(d, hkv * self.head_dim)
        self.proj = Linear(d, d, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((h,), float(cfg.qk_gain_init)))
        custom = [r for a in addons if a.implements("make_rotary")
                  for r in [a.make_rotary(self.head_dim, cfg.rope_base)] if r is not None]
        self.rotary = custom[0] if custom else Rotary(self.head_dim, cfg.rope_base)
        self._value_hooks = [a for a in addons if a.implements("values") and a.applies_to(layer)]
        self._output_hooks = [a for a in addons if a.implements("attn_output") and a.applies_to(layer)]

    def forward(self, x: torch.Tensor, ctx) -> torch.Tensor:
        bsz, seq, dim = x.shape
        q = self.c_q(x).view(bsz, seq, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.c_k(x).view(bsz, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.c_v(x)
        ctx.raw_values[self.layer] = v
        for hook in self._value_hooks:
            v = hook.values(v, self.layer, ctx)
        v = v.view(bsz, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = self.rotary(rms_norm(q)), self.rotary(rms_norm(k))
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]
        if self._output_hooks:
            ctx.attn_input = x
        if ctx.attn_mask is None or isinstance(ctx.attn_mask, torch.Tensor):
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=ctx.attn_mask, is_causal=ctx.attn_mask is None,
                enable_gqa=self.num_kv_heads != self.num_heads,
            )
        elif hasattr(ctx.attn_mask, "attend"):  # segments for a varlen kernel (doc_isolation kernel = "varlen")
            y = ctx.attn_mask.attend(q, k, v)
        else:  # a flex_attention BlockMask (doc_isolation kernel = "flex")
            from torch.nn.attention.flex_attention import flex_attention

            y = flex_attention(q, k, v, block_mask=ctx.attn_mask, enable_gqa=self.num_kv_heads != self.num_heads)
        for hook in self._output_hooks:
            y = hook.attn_output(y, v, self.layer, ctx)
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
    """h = m0·x + m1·x0;  h += a·Attn(s·rms(h));  h += b·MLP(s·rms(h))  (per-channel m, a, b;
    s = product of the add-ons' norm scales for this layer, 1 by default)."""

    def __init__(self, cfg: ModelConfig, layer: int, addons: list) -> None:
        super().__init__()
        d = cfg.model_dim
        self.layer = layer
        self.attn = CausalSelfAttention(cfg, layer, addons)
        self.mlp = MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(d))
        self.mlp_scale = nn.Parameter(torch.ones(d))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d))))
        scale = 1.0
        for a in addons:
            if a.implements("norm_scale") and a.applies_to(layer):
                scale *= a.norm_scale(layer)
        self.norm_scale = scale

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x) if self.norm_scale == 1.0 else rms_norm(x) * self.norm_scale

    def forward(self, x: torch.Tensor, x0: torch.Tensor, ctx) -> torch.Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(self._norm(x), ctx)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(self._norm(x))
