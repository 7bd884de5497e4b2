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

`kernel = "varlen"`: on a GPU with FlashAttention installed (FA3's `flash_attn_interface`, what the
record used, else FA2's `flash_attn`), the rows are flattened into one stream cut at every segment
start (`cu_seqlens`) and attended by the varlen kernel, which never computes a masked block. Where
no such kernel can run it takes the flex path (on a GPU) or the boolean mask (on CPU). The
segmenting and the dispatch are tested on CPU against a per-segment reference with the same
signature; the real kernel has not been run here (no GPU).

`max_segment` with `train.packed_rows` is the record's packing loader: each micro-batch is one row
of all the rank's tokens, and a document longer than `max_segment` is cut into pieces of that length
counted from its own BOS (not from the row's start). Only the flex kernel can hold such a row.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Callable

import torch

from pgolf.config import choice
from pgolf.errors import ConfigError
from pgolf.model.addons.base import ADDONS, AddOn


KERNELS = ("mask", "flex", "varlen")


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


@functools.cache
def flash_varlen_function() -> Callable | None:
    """FlashAttention's `flash_attn_varlen_func` when installed: FA3 first, then FA2; else None."""
    for module in ("flash_attn_interface", "flash_attn"):
        try:
            return importlib.import_module(module).flash_attn_varlen_func
        except (ImportError, AttributeError):
            continue
    return None


@dataclass
class VarlenSegments:
    """The rows as one flattened stream of segments for a varlen kernel: `cu_seqlens` holds the
    int32 offset of every segment start and the stream's end; `max_seqlen` bounds every segment
    (an upper bound, so building it needs no device-to-host copy)."""

    cu_seqlens: torch.Tensor
    max_seqlen: int
    function: Callable

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention inside each segment; (B, H, T, D) in and out, GQA by head count."""
        b, h, t, d = q.shape
        dtype = q.dtype
        # The flash kernels take only half precision (training on a GPU already runs in bf16).
        half = dtype if dtype in (torch.float16, torch.bfloat16) else torch.bfloat16

        def flat(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(1, 2).reshape(b * t, x.size(1), d).to(half)

        out = self.function(flat(q), flat(k), flat(v), self.cu_seqlens, self.cu_seqlens, self.max_seqlen,
                            self.max_seqlen, causal=True)
        out = out[0] if isinstance(out, tuple) else out  # FA3 versions differ: out or (out, lse)
        return out.view(b, t, h, d).transpose(1, 2).to(dtype)


def varlen_segments(ids: torch.Tensor, bos_id: int, max_segment: int, function: Callable) -> VarlenSegments:
    """The segments of `segment_ids` (and every row's start) as offsets into the flattened rows."""
    seg = segment_ids(ids, bos_id, max_segment)
    b, t = ids.shape
    starts = torch.ones_like(seg, dtype=torch.bool)
    starts[:, 1:] = seg[:, 1:] != seg[:, :-1]
    offsets = torch.nonzero(starts.reshape(-1)).squeeze(1)
    cu_seqlens = torch.cat([offsets, offsets.new_tensor([b * t])]).to(torch.int32)
    return VarlenSegments(cu_seqlens, min(max_segment, t) if max_segment > 0 else t, function)


@ADDONS.register("doc_isolation")
class DocIsolation(AddOn):
    @dataclass
    class Options:
        bos_id: int = 1
        kernel: str = choice("mask", KERNELS)
        # > 0: also cut every document into pieces of at most this many tokens (0 = never)
        max_segment: int = 0

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        if cfg.max_segment < 0:
            raise ConfigError(f"model.addons.doc_isolation.max_segment = {cfg.max_segment}: must be >= 0")
        self.max_segment = cfg.max_segment

    def set_context(self, seq_len: int):
        """Packed documents are cut at the current context: a growing context's stage in training, the
        evaluation's length when it scores (#2135's code cuts them at its 2,560-token eval context)."""
        if self.cfg.max_segment <= 0:
            return None
        previous, self.max_segment = self.max_segment, seq_len

        def restore() -> None:
            self.max_segment = previous
        return restore

    def attention_mask(self, ids):
        if self.cfg.kernel == "varlen" and ids.is_cuda and flash_varlen_function() is not None:
            return varlen_segments(ids, self.cfg.bos_id, self.max_segment, flash_varlen_function())
        # torch's flex_attention has no backward on CPU: there, training takes the same rule as
        # the boolean mask (exact, only larger).
        if self.cfg.kernel in ("flex", "varlen") and (ids.is_cuda or not torch.is_grad_enabled()):
            return document_block_mask(ids, self.cfg.bos_id, self.max_segment)
        return document_mask(ids, self.cfg.bos_id, self.max_segment)
