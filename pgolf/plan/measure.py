"""Measure a preset's training step and evaluation cost on the device at hand.

Training: the real trainer (`pgolf.train.loop.train`) runs `steps` optimizer steps of *one rank's
share* of an N-GPU run — the preset's batch divided by N, Muon orthogonalising only 1/N of the
matrices — after its compile warm-up, so the measured step is what each of N GPUs computes;
only the collectives are missing (the projection adds them). Late QAT and GPTQ calibration are
off while timing (QAT switches on a fake-quant branch and recompiles; calibration is reported
from the preset's reserve).

Evaluation: each method scores random validation tokens (speed does not depend on the text)
after one warm-up pass; tokens/s per GPU.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from pgolf.config import Preset
from pgolf.errors import ConfigError
from pgolf.model.gpt import GPT, count_parameters
from pgolf.job.preset import with_overrides
from pgolf.plan.flops import train_flops_per_token
from pgolf.runtime import Runtime, compile_module, device_name
from pgolf.train.loop import train


def per_rank_overrides(preset: Preset, gpus: int) -> list[str]:
    """Cut the preset's global batch to one rank's share of `gpus`."""
    cfg = preset.train
    if cfg.tokens_per_step % (gpus * cfg.seq_len):
        raise ConfigError(f"train.tokens_per_step {cfg.tokens_per_step} does not split into {gpus} ranks "
                          f"of whole {cfg.seq_len}-token sequences")
    per_rank = cfg.tokens_per_step // gpus
    accum = max(cfg.grad_accum // gpus, 1)
    while per_rank % (accum * cfg.seq_len):
        accum -= 1
    return [f"train.tokens_per_step={per_rank}", f"train.grad_accum={accum}"]


@contextlib.contextmanager
def emulated_world(world_size: int):
    """One process that sees a `world_size`-rank process group whose collectives do nothing (torch's
    fake backend): Muon then orthogonalises only rank 0's share of the matrices, so one device times
    the per-rank work of an N-rank run. The weights it produces are not a valid training run."""
    if world_size <= 1 or dist.is_initialized():
        yield
        return
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def measure_training(preset: Preset, gpus: int, data_dir: str | Path, runtime: Runtime,
                     steps: int = 20, warmup_steps: int = 3) -> dict:
    timing = with_overrides(preset, per_rank_overrides(preset, gpus) + [
        f"train.iterations={steps}", "train.max_wallclock_seconds=0", f"train.warmup_steps={warmup_steps}",
        "train.val_every=0", "train.train_log_every=0", f"train.val_tokens_limit={preset.train.seq_len}",
        "train.qat_bits=0", "train.gptq_calibration_sequences=0", "train.gptq_reserve_seconds=0",
        "train.checkpoint_every=0",
    ])
    cuda = runtime.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(runtime.device)
    with emulated_world(gpus):
        summary = train(timing, data_dir, None, runtime, progress=False)
    peak = torch.cuda.max_memory_allocated(runtime.device) if cuda else None
    model = GPT(preset.model)
    flops_token = train_flops_per_token(model, preset.model, preset.train.seq_len)
    tokens_per_rank_step = timing.train.tokens_per_step
    ms = summary["step_avg_ms"]
    return {
        "preset": preset.name,
        "device": device_name(runtime.device),
        "emulated_gpus": gpus,
        "params": count_parameters(model),
        "steps_timed": summary["steps"],
        "tokens_per_step_global": preset.train.tokens_per_step,
        "tokens_per_step_per_gpu": tokens_per_rank_step,
        "ms_per_step_per_gpu": ms,
        "tokens_per_s_per_gpu": tokens_per_rank_step / (ms / 1000),
        "train_flops_per_token": flops_token,
        "peak_memory_bytes": peak,
        "grad_bytes": 4 * sum(p.numel() for p in model.parameters()),
        "muon_update_bytes": 2 * sum(p.numel() for n, p in model.named_parameters()
                                     if n.startswith("blocks.") and p.ndim == 2),
    }


def random_stream(n_tokens: int, vocab: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, size=n_tokens + 1, dtype=np.uint16)


def time_call(fn, runtime: Runtime) -> float:
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure_eval(preset: Preset, runtime: Runtime, pipeline: list[str], tokens: int, tables) -> dict:
    """Tokens/s per GPU of one evaluation pipeline on random weights and random tokens."""
    from pgolf.evaluate.pipeline import run_pipeline

    torch.manual_seed(0)
    model = GPT(preset.model).to(runtime.device)
    if runtime.device.type == "cuda":  # as a submission would run it
        model = compile_module(model)
    stream = random_stream(tokens, preset.model.vocab_size)
    run_pipeline(model, stream, tables, preset, runtime, pipeline)  # compile every batch shape first
    seconds = time_call(lambda: run_pipeline(model, stream, tables, preset, runtime, pipeline), runtime)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s_per_gpu": tokens / seconds}
