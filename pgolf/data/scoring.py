"""The standard scorer, as the contest's `eval_val`: training validates with it and the
`standard` evaluation method scores with it, so it sits below both.

The validation stream is cut into non-overlapping sequences of T tokens (the first
⌊(N−1)/T⌋·T + 1 tokens are used); every target is scored once with the full softmax; loss,
token and byte sums are accumulated in float64 and summed across ranks.
"""

from __future__ import annotations

import numpy as np
import torch

from pgolf.data.bpb import BpbTotals, TorchByteTables
from pgolf.errors import DataError
from pgolf.runtime import Runtime, all_reduce_sum_, autocast_context


MAX_FORWARD_TOKENS = 65_536


def usable_targets(n_tokens: int, seq_len: int) -> int:
    """The contest's scored prefix: ⌊(N−1)/T⌋·T targets (a partial last sequence is dropped)."""
    usable = ((n_tokens - 1) // seq_len) * seq_len
    if usable <= 0:
        raise DataError(f"the validation split has {n_tokens} tokens, fewer than one sequence of {seq_len}")
    return usable


def usable_tokens(val_tokens: np.ndarray, seq_len: int, limit: int = 0) -> np.ndarray:
    n = val_tokens.size
    if limit > 0:
        n = min(n, limit + 1)
    return val_tokens[: usable_targets(n, seq_len) + 1]


@torch.no_grad()
def evaluate_standard(model: torch.nn.Module, val_tokens: np.ndarray, tables: TorchByteTables,
                      seq_len: int, batch_tokens: int, runtime: Runtime, limit: int = 0) -> BpbTotals:
    """Score the validation stream; `model.loss(x, y, reduction="none")` gives per-token nats."""
    tokens = usable_tokens(val_tokens, seq_len, limit)
    total_seqs = (tokens.size - 1) // seq_len
    first = total_seqs * runtime.rank // runtime.world_size
    last = total_seqs * (runtime.rank + 1) // runtime.world_size
    # One forward scores at most MAX_FORWARD_TOKENS per rank (the contest's per-GPU val batch):
    # the sums do not depend on batching, and a 524K-token forward does not fit one CPU's memory.
    batch_seqs = max(1, min(batch_tokens // (seq_len * runtime.world_size), MAX_FORWARD_TOKENS // seq_len))
    sums = torch.zeros(3, dtype=torch.float64, device=runtime.device)
    was_training = model.training
    model.eval()
    for s in range(first, last, batch_seqs):
        e = min(s + batch_seqs, last)
        raw = torch.from_numpy(tokens[s * seq_len : e * seq_len + 1].astype(np.int64)).to(runtime.device)
        x, y = raw[:-1].view(-1, seq_len), raw[1:].view(-1, seq_len)
        with autocast_context(runtime):
            nats = model(x, y, reduction="none")
        sums[0] += nats.double().sum()
        sums[1] += y.numel()
        positions = torch.arange(s * seq_len, e * seq_len, device=runtime.device).view(-1, seq_len)
        sums[2] += tables.count(x, y, positions).sum().double()
    model.train(was_training)
    all_reduce_sum_(sums, runtime)
    return BpbTotals(nats=float(sums[0]), tokens=int(sums[1]), bytes=int(sums[2]))
