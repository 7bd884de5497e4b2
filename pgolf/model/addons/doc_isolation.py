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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pgolf.errors import ConfigError
from pgolf.model.addons.base import ADDONS, AddOn


def document_mask(ids: torch.Tensor, bos_id: int) -> torch.Tensor:
    """(B, 1, T, T) bool: query q may attend key k iff k ≤ q and both lie in the same document."""
    doc = torch.cumsum(ids == bos_id, dim=1)  # document index of each position within its row
    t = ids.size(1)
    causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
    return ((doc[:, :, None] == doc[:, None, :]) & causal)[:, None]


def document_block_mask(ids: torch.Tensor, bos_id: int):
    """The same rule as `document_mask`, as a flex_attention BlockMask."""
    from torch.nn.attention.flex_attention import create_block_mask

    doc = torch.cumsum(ids == bos_id, dim=1)

    def same_document_causal(b, h, q_idx, kv_idx):
        return (doc[b, q_idx] == doc[b, kv_idx]) & (kv_idx <= q_idx)

    return create_block_mask(same_document_causal, ids.size(0), None, ids.size(1), ids.size(1), device=ids.device)


@ADDONS.register("doc_isolation")
class DocIsolation(AddOn):
    @dataclass
    class Options:
        bos_id: int = 1

        kernel: str = "mask"  # mask | flex

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        if cfg.kernel not in ("mask", "flex"):
            raise ConfigError(f"model.addons.doc_isolation.kernel = {cfg.kernel!r}: choose mask or flex")

    def attention_mask(self, ids):
        if self.cfg.kernel == "flex":
            return document_block_mask(ids, self.cfg.bos_id)
        return document_mask(ids, self.cfg.bos_id)
