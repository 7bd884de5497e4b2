"""What one rank computes per micro-batch: the split of a step's global batch over ranks and
micro-batches (`train.grad_accum` counts micro-batches over all ranks, the contest's
`8 // world_size` per rank on 8 micro-batches)."""

from __future__ import annotations

from dataclasses import dataclass

from pgolf.config import TrainConfig
from pgolf.errors import ConfigError


@dataclass(frozen=True)
class RankBatch:
    world_size: int
    micro_batches: int  # per rank per optimizer step
    tokens: int  # per rank per micro-batch
    rows: int  # the micro-batch's rows: tokens / seq_len, or one packed row
    row_tokens: int


def micro_batches_per_rank(cfg: TrainConfig, world_size: int) -> int:
    micro_per_rank, rem = divmod(cfg.grad_accum, world_size)
    if micro_per_rank < 1 or rem:
        raise ConfigError(
            f"train.grad_accum {cfg.grad_accum} must be a positive multiple of the world size {world_size}")
    if cfg.tokens_per_step % (cfg.grad_accum * cfg.seq_len):
        raise ConfigError(
            f"train.tokens_per_step {cfg.tokens_per_step} must be a multiple of grad_accum x seq_len "
            f"= {cfg.grad_accum * cfg.seq_len}")
    return micro_per_rank


def rank_batch(cfg: TrainConfig, world_size: int) -> RankBatch:
    """The micro-batch each of `world_size` ranks trains on (a ConfigError when they cannot split it)."""
    micro = micro_batches_per_rank(cfg, world_size)
    tokens = cfg.tokens_per_step // cfg.grad_accum
    row = tokens if cfg.packed_rows else cfg.seq_len
    return RankBatch(world_size=world_size, micro_batches=micro, tokens=tokens, rows=tokens // row, row_tokens=row)
