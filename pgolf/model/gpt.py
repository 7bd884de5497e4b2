"""The GPT backbone (docs/techniques.md), with add-on hooks at fixed points.

    x = E[ids] (+ embed hooks); x = rms(x) (+ post-embed hooks); x0 = x
    for each block in the run order (layer_order hook; 0…L−1 by default):
        before_block hooks; x = Block(x, x0) (or a block_forward hook); after_block hooks
    x = final_hidden hooks (x);  logits = softcap · tanh(rms(x) Eᵀ / softcap)

The naive baseline is this backbone with the `unet_skips` add-on (17,059,912 parameters with the
default ModelConfig, the contest script's count).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgolf.config import ModelConfig
from pgolf.model.addons import ForwardContext, build_addons
from pgolf.model.blocks import Block, Linear, rms_norm
from pgolf.model.roles import parameter_roles

class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.addons = build_addons(cfg)
        addons = list(self.addons.values())
        self.blocks = nn.ModuleList(Block(cfg, i, addons) for i in range(cfg.num_layers))
        self.lm_head = None if cfg.tie_embeddings else Linear(cfg.model_dim, cfg.vocab_size, zero_init=True)
        self._embed_hooks = [a for a in addons if a.implements("embed")]
        self._post_embed_hooks = [a for a in addons if a.implements("post_embed")]
        self._before = [[a for a in addons if a.implements("before_block") and a.applies_to(i)]
                        for i in range(cfg.num_layers)]
        self._after = [[a for a in addons if a.implements("after_block") and a.applies_to(i)]
                       for i in range(cfg.num_layers)]
        self._block_forward = [next((a for a in addons if a.implements("block_forward") and a.applies_to(i)), None)
                               for i in range(cfg.num_layers)]
        self._final_hooks = [a for a in addons if a.implements("final_hidden")]
        # hooks one add-on serves at most; kept in a dict, which nn.Module does not register, so an
        # add-on's parameters are not a second time in the state dict under the hook's name
        self._sole = {hook: next((a for a in addons if a.implements(hook)), None)
                      for hook in ("layer_order", "attention_mask", "softcap")}
        self._progress_hooks = [a for a in addons if a.implements("on_train_progress")]
        self._context_hooks = [a for a in addons if a.implements("set_context")]
        if cfg.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, mean=0.0, std=cfg.tied_embed_init_std)
        for a in addons:
            if a.implements("init_weights"):
                a.init_weights(self)
        self.roles = parameter_roles(self)  # what each parameter is, said once (asserts one role each)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states (B, T, d), before the output projection."""
        ctx = ForwardContext(ids=ids, num_layers=self.cfg.num_layers)
        if self._sole["attention_mask"] is not None:
            ctx.attn_mask = self._sole["attention_mask"].attention_mask(ids)
        x = ctx.x0 = self.embed(ids, ctx)
        order = self.layer_order()
        ctx.num_virtual = len(order)
        for v, i in enumerate(order):
            ctx.virtual = v
            for a in self._before[i]:
                x = a.before_block(x, i, ctx)
            x_in = x
            custom = self._block_forward[i]
            x = self.blocks[i](x, ctx.x0, ctx) if custom is None else custom.block_forward(self.blocks[i], x, ctx.x0, i, ctx)
            for a in self._after[i]:
                x = a.after_block(x_in, x, i, ctx)
        for a in self._final_hooks:
            x = a.final_hidden(x, ctx)
        return rms_norm(x)

    def embed(self, ids: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        """x0: the token embedding through the embed hooks, the first RMSNorm and the post-embed hooks."""
        x = self.tok_emb(ids)
        for a in self._embed_hooks:
            x = a.embed(x, ctx)
        x = rms_norm(x)
        for a in self._post_embed_hooks:
            x = a.post_embed(x, ctx)
        return x

    def layer_order(self) -> list[int]:
        """The physical blocks one forward runs, in order."""
        n = self.cfg.num_layers
        hook = self._sole["layer_order"]
        return hook.layer_order(n) if hook is not None else list(range(n))

    def set_train_progress(self, frac: float) -> bool:
        """Tell the add-ons how much of the run is done; True when the computation changed."""
        changed = False
        for a in self._progress_hooks:
            changed |= bool(a.on_train_progress(frac))
        return changed

    def set_context(self, seq_len: int):
        """Tell the add-ons the context (a growing context's stage, or the evaluation's); returns a
        callable that gives them back the one they had."""
        restores = [a.set_context(seq_len) for a in self._context_hooks]

        def restore() -> None:
            for r in reversed(restores):
                if r is not None:
                    r()
        return restore

    def logits_from_hidden(self, h: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        """`delta`: added to the logits before the softcap (an evaluation-time adapter on the head)."""
        weight = self.tok_emb.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(h, weight.to(h.dtype))
        if delta is not None:
            logits = logits + delta.to(logits.dtype)
        cap = self.cfg.logit_softcap
        if self._sole["softcap"] is not None:
            return self._sole["softcap"].softcap(logits, cap)
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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
