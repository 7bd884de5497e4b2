"""The add-on protocol: how a technique plugs into the backbone without the backbone naming it.

An add-on is an `nn.Module` registered under a `name` with a nested `Options` dataclass; a preset
switches it on with a table `[model.addons.NAME]`. The backbone calls these hooks at fixed points, in the
add-ons' `ORDER` (then name) order; a hook an add-on does not override is never called:

    embed(x, ctx)                    token embedding, before the first RMSNorm (BigramHash)
    post_embed(x, ctx)               after the first RMSNorm; the result is x0 (SmearGate)
    norm_scale(layer) -> float       factor on both pre-norm outputs of a block (LN scale)
    make_rotary(head_dim, base)      replaces the full-dimension RoPE (partial RoPE)
    values(v, layer, ctx)            value projection output (B, T, Hkv·D) (VE, VRL)
    attn_output(y, v, layer, ctx)    attention output per head (B, H, T, D) before `proj` (XSA)
    before_block(x, layer, ctx)      residual stream entering a block (U-Net decoder skips)
    block_forward(block, x, x0, layer, ctx)  replaces the block's residual update (parallel lanes)
    after_block(x_in, x, layer, ctx) residual stream leaving a block (DTG, U-Net encoder side)
    final_hidden(x, ctx)             residual stream after the last block, before the final norm
    layer_order(num_layers)          the physical layers to run, in order (depth recurrence)
    softcap(logits, cap)             replaces the logit softcap cap·tanh(z/cap) (asymmetric logit rescale)
    attention_mask(ids)              a boolean (B, 1, T, T) mask (or a flex BlockMask) for every attention, or None for plain
                                     causal attention (document isolation)
    on_train_progress(frac)          the trainer reports the fraction of the run done (switches)
    set_context(seq_len)             the context changed (a growing context's stage, or evaluation's length:
                                     packed documents are cut at it); returns how to restore the old one
    init_weights(model)              after the whole model is built (orthogonal init)
    parameter_role(param_name)       the role of each of the add-on's own parameters (pgolf.model.roles)

`applies_to(layer)` limits the per-layer hooks to chosen layers (e.g. XSA on the last 4). With
depth recurrence a physical layer runs more than once; `ctx.virtual` is the position in the run
order and `ctx.num_virtual` its length (the U-Net split uses them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from pgolf.registry import Registry


@dataclass
class ForwardContext:
    """Per-forward scratch shared by the hooks of one forward pass."""

    ids: torch.Tensor
    num_layers: int
    x0: torch.Tensor | None = None
    raw_values: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> W_v h, before hooks
    stash: dict[str, Any] = field(default_factory=dict)
    virtual: int = 0  # position of the running block in the run order
    num_virtual: int = 0  # length of the run order (num_layers without recurrence)
    attn_input: torch.Tensor | None = None  # the normalised input of the running attention
    attn_mask: Any = None  # (B, 1, T, T) bool, True = may attend; a flex_attention BlockMask; None = causal


class AddOn(nn.Module):
    ORDER: ClassVar[int] = 50
    name: ClassVar[str]  # set by ADDONS.register
    Options: ClassVar[type] = object
    # Parameters that are gates: pack can store them per row at `pack.gate_bits` (pgolf.quant.gate_int8).
    GATE_PARAMETERS: ClassVar[tuple[str, ...]] = ()

    HOOKS: ClassVar[tuple[str, ...]] = (
        "embed", "post_embed", "norm_scale", "make_rotary", "values", "attn_output",
        "before_block", "block_forward", "after_block", "final_hidden", "layer_order", "attention_mask", "softcap",
        "on_train_progress", "set_context",
        "init_weights",
    )

    def __init__(self, cfg: Any, model_cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.model_cfg = model_cfg

    def applies_to(self, layer: int) -> bool:
        return True

    def implements(self, hook: str) -> bool:
        return getattr(type(self), hook) is not getattr(AddOn, hook)

    def parameter_role(self, param_name: str) -> str:
        """"table", "matrix", "scalar" or "control" (pgolf.model.roles); scalar by default."""
        return "scalar"

    # Hooks: identity defaults, never called unless overridden (see `implements`).
    def embed(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return x

    def post_embed(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return x

    def norm_scale(self, layer: int) -> float:
        return 1.0

    def make_rotary(self, head_dim: int, base: float) -> nn.Module | None:
        return None

    def values(self, v: torch.Tensor, layer: int, ctx: ForwardContext) -> torch.Tensor:
        return v

    def attn_output(self, y: torch.Tensor, v: torch.Tensor, layer: int, ctx: ForwardContext) -> torch.Tensor:
        return y

    def before_block(self, x: torch.Tensor, layer: int, ctx: ForwardContext) -> torch.Tensor:
        return x

    def block_forward(self, block: nn.Module, x: torch.Tensor, x0: torch.Tensor, layer: int,
                      ctx: ForwardContext) -> torch.Tensor:
        return block(x, x0, ctx)

    def after_block(self, x_in: torch.Tensor, x: torch.Tensor, layer: int, ctx: ForwardContext) -> torch.Tensor:
        return x

    def final_hidden(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return x

    def layer_order(self, num_layers: int) -> list[int]:
        return list(range(num_layers))

    def attention_mask(self, ids: torch.Tensor) -> torch.Tensor | None:
        return None

    def softcap(self, logits: torch.Tensor, cap: float) -> torch.Tensor:
        return cap * torch.tanh(logits / cap) if cap > 0 else logits

    def on_train_progress(self, frac: float) -> bool:
        """Returns True when the model's computation changed (a switch flipped)."""
        return False

    def set_context(self, seq_len: int):
        """Returns a callable restoring the previous context, or None when nothing changed."""
        return None

    def init_weights(self, model: nn.Module) -> None:
        return None


ADDONS: Registry[type[AddOn]] = Registry("model add-on")


def select_layers(num_layers: int, layers: list[int], last: int) -> set[int]:
    """Layers an add-on acts on: explicit `layers` (negative counts from the end), else the last
    `last` layers (`last = 0` or ≥ num_layers: all layers)."""
    if layers:
        out = {l % num_layers for l in layers}
        if any(not -num_layers <= l < num_layers for l in layers):
            from pgolf.errors import ConfigError

            raise ConfigError(f"layer indices {layers} out of range for {num_layers} layers")
        return out
    if last <= 0 or last >= num_layers:
        return set(range(num_layers))
    return set(range(num_layers - last, num_layers))
