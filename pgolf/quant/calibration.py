"""Calibration for full-Hessian GPTQ: where the activations come from, and the rule on that.

The contest's rule (docs/legality.md): GPTQ may calibrate on *training* data —
and then the Hessian collection must finish inside the training wallclock cap — or on sequences
the model generates itself after training (AR self-calibration, #1019), and never on
validation tokens. `calibration_batches` refuses a validation shard or split with an error that
says why; the Hessians are saved with their provenance (source, shards, sequences, seconds) and
the artifact records it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from pgolf.config import CALIBRATION_SAMPLINGS
from pgolf.data.loader import TokenStream
from pgolf.errors import DataError, PgolfError
from pgolf.quant.gptq import GPTQ
from pgolf.quant.mixed import KEEP_FLOAT_MAX_NUMEL
from pgolf.io import atomic_write_safetensors, write_json
from pgolf.rundir import CALIBRATION_FILE, HESSIANS_FILE

VAL_RULE = ("GPTQ calibration may not read validation data (contest rule: the validation set is "
            "the test set; calibrate on training shards inside the training cap, or on "
            "self-generated sequences)")


SAMPLINGS = CALIBRATION_SAMPLINGS


def random_windows(sizes: list[int], sequences: int, seq_len: int, seed: int) -> list[tuple[int, int]]:
    """(shard, start) of `sequences` distinct windows of seq_len + 1 tokens, drawn uniformly from
    every shard's grid of non-overlapping windows at a random phase (#1855's shuffled loader draws
    from the same set: a shard in proportion to the windows it has left, then one of them)."""
    rng = np.random.default_rng(seed)
    phases = [int(rng.integers(min(seq_len, max(size - seq_len - 1, 0)) + 1)) for size in sizes]
    counts = np.array([max((size - 1 - ph) // seq_len, 0) for size, ph in zip(sizes, phases)], dtype=np.int64)
    total = int(counts.sum())
    if total < sequences:
        raise DataError(f"the training shards hold {total:,} windows of {seq_len} tokens; "
                        f"calibration asks for {sequences:,}")
    picks = rng.choice(total, size=sequences, replace=False)
    bounds = np.cumsum(counts)
    shard = np.searchsorted(bounds, picks, side="right")
    first = bounds - counts
    return [(int(s), phases[s] + int(p - first[s]) * seq_len) for s, p in zip(shard, picks)]


def train_calibration_batches(data_dir: str | Path, sequences: int, seq_len: int, batch: int = 8,
                              sampling: str = "stream", seed: int = 0) -> tuple[Iterator[torch.Tensor], dict]:
    """`sequences` windows of the training stream: its first ones (`stream`) or windows at random
    offsets over every shard (`random`); a validation shard is refused."""
    path = Path(data_dir)
    if path.is_file() or "fineweb_val_" in path.name:
        raise DataError(f"{path}: {VAL_RULE}")
    if sampling not in SAMPLINGS:
        raise DataError(f"calibration sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    stream = TokenStream(path, "train")  # reads fineweb_train_* only
    provenance = {"source": "train", "shards": [str(p) for p in stream.paths], "sequences": sequences,
                  "seq_len": seq_len, "sampling": sampling}
    if sampling == "random":
        provenance["seed"] = seed
        windows = random_windows([s.size for s in stream.shards], sequences, seq_len, seed)

    def take(n: int, done: int) -> np.ndarray:
        if sampling == "stream":
            return stream.take(n * seq_len)
        return np.concatenate([np.asarray(stream.shards[s][a : a + seq_len]) for s, a in windows[done : done + n]])

    def gen() -> Iterator[torch.Tensor]:
        done = 0
        while done < sequences:
            n = min(batch, sequences - done)
            yield torch.from_numpy(take(n, done).astype(np.int64)).view(n, seq_len)
            done += n

    return gen(), provenance


@torch.no_grad()
def self_generated_batches(model: nn.Module, sequences: int, seq_len: int, vocab_size: int,
                           temperature: float = 0.8, seed: int = 0, batch: int = 8) -> tuple[Iterator[torch.Tensor], dict]:
    """AR self-calibration (#1019): the model samples its own sequences (first token uniform,
    fixed seed, temperature 0.8); no data is read."""
    provenance = {"source": "self-generated", "sequences": sequences, "seq_len": seq_len,
                  "temperature": temperature, "seed": seed}
    device = next(model.parameters()).device

    def gen() -> Iterator[torch.Tensor]:
        g = torch.Generator(device="cpu").manual_seed(seed)
        left = sequences
        while left > 0:
            n = min(batch, left)
            ids = torch.randint(0, vocab_size, (n, 1), generator=g).to(device)
            for _ in range(seq_len - 1):
                logits = model(ids)[:, -1].float() / temperature
                nxt = torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=g).to(device)
                ids = torch.cat((ids, nxt), dim=1)
            yield ids
            left -= n

    return gen(), provenance


def source_batches(model: nn.Module, source: str, data_dir: str | Path | None, sequences: int, seq_len: int,
                   vocab_size: int, seed: int = 0, sampling: str = "stream",
                   temperature: float = 0.8) -> tuple[Iterator[torch.Tensor], dict]:
    """Calibration sequences from `source`: "train" (the training shards of `data_dir`) or "self"
    (sampled by the model) — the one place the choice is made (in-cap and `pgolf calibrate`)."""
    if source == "self":
        return self_generated_batches(model, sequences, seq_len, vocab_size, temperature=temperature, seed=seed)
    if data_dir is None:
        raise PgolfError("calibration on training data needs the training shard directory; pass --data DIR")
    return train_calibration_batches(data_dir, sequences, seq_len, sampling=sampling, seed=seed)


def calibration_batches(model: nn.Module, train_cfg, data_dir: str | Path,
                        vocab_size: int) -> tuple[Iterator[torch.Tensor], dict]:
    """The in-cap calibration a preset asks for (`train.gptq_calibration_*`)."""
    return source_batches(model, train_cfg.gptq_calibration_source, data_dir, train_cfg.gptq_calibration_sequences,
                          train_cfg.gptq_calibration_seq_len or train_cfg.seq_len, vocab_size, seed=train_cfg.seed,
                          sampling=train_cfg.gptq_calibration_sampling)


def quantizable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Linear layers whose weights the mixed-precision policy quantizes as matrices."""
    return {f"{name}.weight": m for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m.weight.numel() > KEEP_FLOAT_MAX_NUMEL}


TIED_EMBEDDING = "tok_emb.weight"


@torch.no_grad()
def collect_hessians(model: nn.Module, batches: Iterator[torch.Tensor]) -> dict[str, GPTQ]:
    """Hessians of every quantizable linear's inputs; for a tied embedding also of the output
    head's input, the final hidden states (what GPTQ on the embedding needs, #1394; the quantizer
    uses it only with `pack.gptq_embedding`)."""
    layers = quantizable_linears(model)
    gptqs = {name: GPTQ(m.in_features) for name, m in layers.items()}
    # Q, K and V read one tensor: its xᵀx is computed once and folded into each (the same values).
    # The input is held while cached, so no other tensor can take its id; `_version` catches an
    # in-place change between two readers.
    last: dict = {}

    def record(g: GPTQ, x: torch.Tensor) -> None:
        if last.get("x") is not x or last["version"] != x._version:
            flat = x.reshape(-1, x.size(-1)).to(g.hessian.dtype)
            last.update(x=x, version=x._version, gram=flat.T @ flat, n=flat.size(0))
        g.add_gram(last["gram"], last["n"])

    handles = [m.register_forward_hook(lambda mod, inp, out, g=gptqs[name]: record(g, inp[0]))
               for name, m in layers.items()]
    tied = getattr(getattr(model, "cfg", None), "tie_embeddings", False) and hasattr(model, "hidden")
    if tied:
        gptqs[TIED_EMBEDDING] = GPTQ(model.cfg.model_dim)
    was_training = model.training
    model.eval()
    try:
        for ids in batches:
            ids = ids.to(next(model.parameters()).device)
            if tied:  # the logits are not needed: the head's input is the last thing to record
                gptqs[TIED_EMBEDDING].add_batch(model.hidden(ids))
            else:
                model(ids)
    finally:
        for h in handles:
            h.remove()
        last.clear()
        model.train(was_training)
    return gptqs


def calibrate(model: nn.Module, batches: Iterator[torch.Tensor], provenance: dict, run_dir: str | Path) -> dict:
    t0 = time.perf_counter()
    gptqs = collect_hessians(model, batches)
    provenance = {**provenance, "seconds": time.perf_counter() - t0, "layers": len(gptqs)}
    run_dir = Path(run_dir)
    atomic_write_safetensors(run_dir / HESSIANS_FILE, {name: g.hessian.contiguous() for name, g in gptqs.items()})
    write_json(run_dir / CALIBRATION_FILE, provenance)
    return provenance


def load_hessians(run_dir: str | Path) -> tuple[dict[str, GPTQ], dict]:
    run_dir = Path(run_dir)
    path = run_dir / HESSIANS_FILE
    if not path.is_file():
        raise PgolfError(
            f"{run_dir}: no GPTQ Hessians ({HESSIANS_FILE}); run `pgolf calibrate {run_dir}` first"
        )
    gptqs = {}
    for name, h in load_file(str(path)).items():
        g = GPTQ(h.size(0))
        g.hessian = h
        gptqs[name] = g
    return gptqs, json.loads((run_dir / CALIBRATION_FILE).read_text())
