"""Document-isolated causal attention (#1530's VarLen attention; in the 1.0611 record).

Rows of the training and validation streams pack several documents, each starting with BOS. With
this add-on no position attends to a position of another document: the mask allows key k for
query q only when k ≤ q and no BOS lies in (k, q]. It is derived from the row's own token ids, so
it reads nothing after q (causal by construction), and it applies identically in training,
evaluation and test-time training. Tokens before a row's first BOS belong to a document that
began in an earlier row and attend only among themselves.

`kernel = "mask"` (default): the mask goes to `scaled_dot_product_attention` as a boolean
(B, 1, T, T) tensor: exact on every device, but it holds T² booleans per row and rules out the
flash kernel. `kernel = "flex"`: the same rule as a `flex_attention` block mask, whose kernel skips
blocks that are wholly masked — what the record gets from FlashAttention-3's varlen kernel on
BOS-derived boundaries, without needing flash-attn installed (compiled by the training loop's
torch.compile; tested equal to the boolean mask on CPU, not yet timed on a GPU). Pair it with the
`bos_id` of every previous-token feature (SmearGate, BigramHash) so nothing else crosses a boundary.

`max_segment` with `train.packed_rows` is the record's packing loader: each micro-batch is one row
of all the rank's tokens, and a document longer than `max_segment` is cut into pieces of that length
counted from its own BOS (not from the row's start). Only the flex kernel can hold such a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pgolf.errors import ConfigError
from pgolf.model.addons.base import ADDONS, AddOn


def segment_ids(ids: torch.Tensor, bos_id: int, max_segment: int = 0) -> torch.Tensor:
    """(B, T) int64: equal values mark positions that may attend to each other (causally).

    A segment is a document (a BOS starts a new one); with `max_segment` > 0 a document is also
    cut every `max_segment` tokens counted from its own start, as the record's packing loader
    cuts long documents into train_seq_len pieces.
    """
    is_bos = ids == bos_id
    doc = torch.cumsum(is_bos, dim=1)
    if max_segment <= 0:
        return doc
    pos = torch.arange(ids.size(1), device=ids.device).expand_as(ids)
    start = torch.cummax(torch.where(is_bos, pos, torch.zeros_like(pos)), dim=1).values
    return doc * (ids.size(1) + 1) + (pos - start) // max_segment


def document_mask(ids: torch.Tensor, bos_id: int, max_segment: int = 0) -> torch.Tensor:
    """(B, 1, T, T) bool: query q may attend key k iff k ≤ q and both lie in the same segment."""
    seg = segment_ids(ids, bos_id, max_segment)
    t = ids.size(1)
    causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
    return ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]


def document_block_mask(ids: torch.Tensor, bos_id: int, max_segment: int = 0):
    """The same rule as `document_mask`, as a flex_attention BlockMask. On a GPU the mask is built
    by a compiled kernel, block by block, so a packed row of ~100 K tokens never materialises T²."""
    from torch.nn.attention.flex_attention import create_block_mask

    seg = segment_ids(ids, bos_id, max_segment)

    def same_segment_causal(b, h, q_idx, kv_idx):
        return (seg[b, q_idx] == seg[b, kv_idx]) & (kv_idx <= q_idx)

    return create_block_mask(same_segment_causal, ids.size(0), None, ids.size(1), ids.size(1), device=ids.device,
                             _compile=ids.is_cuda)


@ADDONS.register("doc_isolation")
class DocIsolation(AddOn):
    @dataclass
    class Options:
        bos_id: int = 1
        kernel: str = "mask"  # mask | flex
        # > 0: also cut every document into pieces of at most this many tokens (0 = never)
        max_segment: int = 0

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        if cfg.kernel not in ("mask", "flex"):
            raise ConfigError(f"model.addons.doc_isolation.kernel = {cfg.kernel!r}: choose mask or flex")
        if cfg.max_segment < 0:
            raise ConfigError(f"model.addons.doc_isolation.max_segment = {cfg.max_segment}: must be >= 0")

    def attention_mask(self, ids):
        # torch's flex_attention has no backward on CPU: there, training takes the same rule as
        # the boolean mask (exact, only larger).
        if self.cfg.kernel == "flex" and (ids.is_cuda or not torch.is_grad_enabled()):
            return document_block_mask(ids, self.cfg.bos_id, self.cfg.max_segment)
        return document_mask(ids, self.cfg.bos_id, self.cfg.max_segment)
