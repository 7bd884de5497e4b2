"""The training token stream (docs/techniques.md): sequential over the sorted train shards,
wrapping around, no shuffling.

Each micro-step takes `(local_tokens + 1) · world` contiguous tokens; rank r uses span r, with
`x = span[:-1]`, `y = span[1:]` as (B, T), or as one row (1, B·T) for packed training
(`train.packed_rows`). So 1 rank with 2 micro-steps and 2 ranks with 1 see
exactly the same batches, and each rank reads only its own part of the stream.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from pgolf.data.shards import list_shards, read_shard
from pgolf.errors import DataError


class TokenStream:
    def __init__(self, data_dir: str | os.PathLike, split: str = "train") -> None:
        self.paths = list_shards(data_dir, split)
        if not self.paths:
            raise DataError(f"{data_dir}: no fineweb_{split}_*.bin shards found")
        self.shards = [read_shard(p) for p in self.paths]
        if sum(s.size for s in self.shards) == 0:
            raise DataError(f"{data_dir}: the {split} split is empty")
        self.shard_index = 0
        self.position = 0

    def state(self) -> dict:
        return {"shard_index": self.shard_index, "position": self.position}

    def load_state(self, state: dict) -> None:
        self.shard_index, self.position = int(state["shard_index"]), int(state["position"])

    def take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            shard = self.shards[self.shard_index]
            avail = shard.size - self.position
            if avail <= 0:
                self.shard_index = (self.shard_index + 1) % len(self.shards)
                self.position = 0
                continue
            k = min(n, avail)
            parts.append(np.asarray(shard[self.position : self.position + k]))
            self.position += k
            n -= k
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class DistributedTokenLoader:
    def __init__(self, data_dir: str | os.PathLike, rank: int, world_size: int,
                 device: torch.device, vocab_size: int | None = None) -> None:
        self.stream = TokenStream(data_dir, "train")
        self.rank, self.world_size, self.device = rank, world_size, device
        self.vocab_size = vocab_size

    def next_batch(self, global_tokens: int, seq_len: int, micro_steps: int,
                   packed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, seq_len) inputs and targets, or one (1, local_tokens) row when `packed`."""
        local_tokens = global_tokens // (self.world_size * micro_steps)
        if local_tokens <= 0 or local_tokens % seq_len:
            raise DataError(
                f"tokens_per_step {global_tokens} / (world {self.world_size} x micro-steps "
                f"{micro_steps}) = {local_tokens} is not a positive multiple of seq_len {seq_len}"
            )
        span = local_tokens + 1
        where = (self.stream.paths[self.stream.shard_index], self.stream.position)
        chunk = self.stream.take(span * self.world_size)
        if self.vocab_size is not None and int(chunk.max()) >= self.vocab_size:
            # Checked per batch (cheap on the host) rather than by scanning every shard up front.
            raise DataError(
                f"{where[0]} (near token {where[1]}): token id {int(chunk.max())} >= model vocab "
                f"{self.vocab_size}; the shards were built with a larger tokenizer than the model expects"
            )
        local = torch.from_numpy(chunk[self.rank * span : (self.rank + 1) * span].astype(np.int64))
        row = local_tokens if packed else seq_len
        x = local[:-1].view(-1, row)
        y = local[1:].view(-1, row)
        pin = self.device.type == "cuda"
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(self.device, non_blocking=pin), y.to(self.device, non_blocking=pin)
