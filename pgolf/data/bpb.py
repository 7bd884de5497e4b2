"""Exact bits-per-byte accounting, as the contest computes val_bpb (docs/techniques.md).

    bytes_t = base_bytes[y_t] + [leading_space[y_t] and not boundary[x_t]]
    bpb     = (Σ_t nats_t / ln 2) / Σ_t bytes_t

Data built with a text transform (CaseOps) charges bytes from its sidecar instead: the original
bytes each token stands for (data/sidecar.py), looked up by the target's position in the stream.

Sums are accumulated in float64 (and int64 for bytes) so that order and sharding do not change
the result beyond float64 rounding.
"""

from __future__ import annotations

import copy

import math
from dataclasses import dataclass

import numpy as np
import torch

from pgolf.data.tokenizer import ByteTables


def target_bytes(tables: ByteTables, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Bytes credited to each target token given the token before it (numpy, int64)."""
    inputs = np.asarray(inputs, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    extra = tables.leading_space[targets] & ~tables.boundary[inputs]
    return tables.base_bytes[targets] + extra.astype(np.int64)


class TorchByteTables:
    """The byte tables as tensors on a device, for counting inside an evaluation loop."""

    def __init__(self, tables: ByteTables, device: torch.device | str = "cpu") -> None:
        self.base_bytes = torch.as_tensor(tables.base_bytes, dtype=torch.int64, device=device)
        self.leading_space = torch.as_tensor(tables.leading_space, dtype=torch.bool, device=device)
        self.boundary = torch.as_tensor(tables.boundary, dtype=torch.bool, device=device)
        self.spellings = tables.spellings

    def count(self, inputs: torch.Tensor, targets: torch.Tensor, positions=None) -> torch.Tensor:
        """Bytes credited to each target; `positions` (the targets' positions in the stream: the
        target of position p is token p+1) matter only to a sidecar."""
        extra = self.leading_space[targets] & ~self.boundary[inputs]
        return self.base_bytes[targets] + extra.to(torch.int64)

    def reordered(self, source: np.ndarray) -> "TorchByteTables":
        """The tables for a stream whose token i is this stream's token source[i] (a re-laid view of
        whole documents): piece tables count from (input, target) pairs, which the view keeps."""
        return self


class SidecarByteCounts(TorchByteTables):
    """Original-byte counts per token of the validation stream (a text transform's sidecar); the
    piece tables stay available for what needs spellings (the byte-level study fixtures)."""

    def __init__(self, tables: ByteTables, sidecar: np.ndarray, device: torch.device | str = "cpu") -> None:
        super().__init__(tables, device)
        self.sidecar = torch.as_tensor(np.asarray(sidecar, dtype=np.int64), device=device)

    def count(self, inputs: torch.Tensor, targets: torch.Tensor, positions=None) -> torch.Tensor:
        if positions is None:
            raise ValueError("byte counts from a sidecar need the targets' stream positions")
        idx = torch.as_tensor(positions, dtype=torch.int64, device=self.sidecar.device) + 1
        return self.sidecar[idx].reshape(targets.shape)

    def reordered(self, source: np.ndarray) -> "SidecarByteCounts":
        out = copy.copy(self)
        out.sidecar = self.sidecar[torch.as_tensor(np.asarray(source), dtype=torch.int64, device=self.sidecar.device)]
        return out


@dataclass
class BpbTotals:
    """Running sums for bpb; add() per batch, merge across ranks by adding the fields."""

    nats: float = 0.0
    tokens: int = 0
    bytes: int = 0

    def add(self, nats: float, tokens: int, nbytes: int) -> None:
        self.nats += float(nats)
        self.tokens += int(tokens)
        self.bytes += int(nbytes)

    @property
    def loss(self) -> float:
        return self.nats / max(self.tokens, 1)

    @property
    def bpb(self) -> float:
        if self.bytes == 0:
            return float("nan")
        return self.nats / math.log(2) / self.bytes

