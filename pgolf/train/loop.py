"""The training loop of the naive baseline, generalised by the preset (docs/techniques.md, "The
baseline").

- Compile warm-up: `warmup_steps` real steps trigger compilation, then the initial weights,
  optimizer states and data stream are restored (this is not an LR warm-up).
- The clock counts only training steps (warm-up and periodic validation are excluded); the run
  stops after the step at which it reaches `max_wallclock_seconds` (the max over ranks), and
  the LR reaches zero exactly there.
- `grad_accum` micro-batches per step are split across ranks, so the global batch and its order
  are the same for any number of ranks.

`train()` reads as the list of its named steps; `Trainer` holds what they share.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pgolf.config import COMPILE_MODES, Preset, TrainConfig
from pgolf.data.bpb import TorchByteTables
from pgolf.data.build import read_manifest
from pgolf.data.loader import DistributedTokenLoader
from pgolf.data.tokenizer import file_sha256
from pgolf.data.validation import load_eval_inputs
from pgolf.errors import ConfigError, TrainingDiverged
from pgolf.identity import code_identity, identity_line
from pgolf.io import ensure_writable, write_json
from pgolf.model.gpt import GPT, count_parameters
from pgolf.quant.calibration import calibrate, calibration_batches
from pgolf.rundir import CALIBRATION_FILE, state_record
from pgolf.runtime import Runtime, all_reduce_sum_, autocast_context, compile_module, data_parallel
from pgolf.data.scoring import evaluate_standard
from pgolf.data.shards import list_shards
from pgolf.train.averaging import Averager, build_averager
from pgolf.train.batch import micro_batches_per_rank
from pgolf.train.checkpoint import save_checkpoint
from pgolf.train.clock import TrainingClock
from pgolf.train.optim.groups import build_optimizers
from pgolf.train.optim.muon import Muon
from pgolf.train.precision import (keep_embedding_in_bf16, muon_momentum_dtype, restore_fp32_embedding,
                                   wants_bf16_state)
from pgolf.train.qat import crown_q_penalty, disable_qat, enable_qat
from pgolf.train.resume import load_resume, restore, save_resume
from pgolf.train.runlog import RunLog, flat_settings
from pgolf.train.schedule import (context_at, context_stages, lr_multiplier, muon_momentum, training_cap_ms,
                                  training_fraction)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def want_compile(mode: str, runtime: Runtime) -> bool:
    if mode not in COMPILE_MODES:  # a preset's value was checked when it loaded; this guards direct calls
        raise ConfigError(f"train.compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    return mode == "on" or (mode == "auto" and runtime.device.type == "cuda")


@dataclass
class Trainer:
    """What the training steps share: the run's inputs, model and optimizers, and its progress."""

    preset: Preset
    runtime: Runtime
    run_dir: Path | None
    data_dir: Path
    tok_path: Path
    val_tokens: np.ndarray
    tables: TorchByteTables
    model: GPT
    compiled: torch.nn.Module  # what validation scores with on CUDA
    train_model: torch.nn.Module  # compiled, wrapped in DDP under torchrun
    optimizers: list[torch.optim.Optimizer]
    loader: DistributedTokenLoader
    log: RunLog
    micro_per_rank: int
    identity: dict
    averager: Averager | None = None
    clock: TrainingClock | None = None
    step: int = 0
    stop_after: int | None = None  # the step at which the wallclock cap was reached
    qat_on: bool = False
    context: int = 0  # the training context now (train.seq_len, or a growing context's stage)
    train_loss: float = float("nan")  # the last logged step's
    val_loss: float = float("nan")
    val_bpb: float = float("nan")
    calibration: dict | None = None
    last_checkpoint: float = field(default_factory=time.monotonic)
    # Told (step, val_loss, val_bpb) after every validation, e.g. a sweep's pruner; may raise to stop.
    on_validation: Callable[[int, float, float], None] | None = None

    @property
    def cfg(self) -> TrainConfig:
        return self.preset.train

    @property
    def muon(self) -> Muon:
        return next(o for o in self.optimizers if isinstance(o, Muon))

    @property
    def writes(self) -> bool:
        return self.run_dir is not None and self.runtime.is_main


def build_trainer(preset: Preset, data_dir: str | Path, run_dir: str | Path | None, runtime: Runtime,
                  tokenizer: str | Path | None, progress: bool | None) -> Trainer:
    cfg, mcfg = preset.train, preset.model
    micro_per_rank = micro_batches_per_rank(cfg, runtime.world_size)
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None and runtime.is_main:
        ensure_writable(run_dir)
    val_tokens, tables, tok_path = load_eval_inputs(data_dir, tokenizer, mcfg.vocab_size, runtime.device)
    seed_everything(cfg.seed)
    model = GPT(mcfg).to(runtime.device)
    if wants_bf16_state(cfg, runtime.device):
        keep_embedding_in_bf16(model)
    optimizers = build_optimizers(model, cfg, tied=mcfg.tie_embeddings,
                                  momentum_dtype=muon_momentum_dtype(cfg, runtime.device))
    compiled = compile_module(model) if want_compile(cfg.compile, runtime) else model
    train_model = data_parallel(compiled, runtime)
    loader = DistributedTokenLoader(data_dir, runtime.rank, runtime.world_size, runtime.device,
                                    vocab_size=mcfg.vocab_size)
    log = RunLog(run_dir, runtime.is_main, progress, cfg.max_wallclock_seconds)
    return Trainer(preset=preset, runtime=runtime, run_dir=run_dir, data_dir=Path(data_dir), tok_path=Path(tok_path),
                   val_tokens=val_tokens, tables=tables, model=model, compiled=compiled, train_model=train_model,
                   optimizers=optimizers, loader=loader, log=log, micro_per_rank=micro_per_rank,
                   identity=code_identity(runtime.device), context=initial_context(preset.train, model))


def log_header(t: Trainer) -> None:
    cfg = t.cfg
    t.log.line(identity_line(t.identity))
    t.log.line(f"preset:{t.preset.name} model_params:{count_parameters(t.model)} world_size:{t.runtime.world_size} "
               f"grad_accum_steps:{t.micro_per_rank} device:{t.runtime.device}")
    t.log.line(f"train_tokens_per_step:{cfg.tokens_per_step} seq_len:{cfg.seq_len} iterations:{cfg.iterations} "
               f"max_wallclock_seconds:{cfg.max_wallclock_seconds:.3f} seed:{cfg.seed}")
    t.log.line(f"val_loader tokens:{t.val_tokens.size - 1} tokenizer:{t.tok_path}")
    # what a reviewer needs to tell the data and the configuration apart (pgolf check reads them)
    bos = int((read_manifest(t.data_dir) or {}).get("bos_id", 1))
    t.log.line(f"train_shards:{len(list_shards(t.data_dir, 'train'))} "
               f"val_docs:{int(np.count_nonzero(t.val_tokens == bos))}")
    t.log.line("hyperparameters:", echo=False)
    for key, value in flat_settings(t.preset.to_dict()):
        t.log.line(f"  {key}: {value}", echo=False)


def switch_qat_on_when_due(t: Trainer, step: int, scale: float) -> None:
    """Late QAT: fake-quantize the matrices once the LR multiplier falls below `qat_start_lr_scale`."""
    cfg = t.cfg
    if cfg.qat_bits and not t.qat_on and scale < cfg.qat_start_lr_scale:
        moved = enable_qat(t.model, cfg.qat_bits)
        t.qat_on = True
        t.log.line(f"late_qat:on step:{step} bits:{cfg.qat_bits} lr_scale:{scale:.3f} mean_weight_change:{moved:.3e}")
        t.log.metric(kind="qat", step=step, bits=cfg.qat_bits, mean_weight_change=moved)


def optimizer_step(t: Trainer, step: int, scale: float, elapsed_ms: float = 0.0) -> torch.Tensor:
    """One optimizer step over `grad_accum` micro-batches; returns this rank's mean loss."""
    cfg, runtime = t.cfg, t.runtime
    switch_qat_on_when_due(t, step, scale)
    for opt in t.optimizers:
        opt.zero_grad(set_to_none=True)
    total = torch.zeros((), device=runtime.device)
    for micro in range(t.micro_per_rank):
        x, y = t.loader.next_batch(cfg.tokens_per_step, t.context, t.micro_per_rank, cfg.packed_rows)
        if runtime.distributed:
            t.train_model.require_backward_grad_sync = micro == t.micro_per_rank - 1
        with autocast_context(runtime):
            loss = t.train_model(x, y)
        objective = loss
        if t.qat_on and cfg.crown_q_lambda > 0:
            objective = loss + crown_q_penalty(t.model, cfg.crown_q_lambda, cfg.crown_q_qmax)
        (objective / t.micro_per_rank).backward()
        total += loss.detach()
    for g in t.muon.param_groups:
        g["momentum"] = muon_momentum(cfg, step, elapsed_ms)
    for opt in t.optimizers:
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * scale
    if cfg.grad_clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), cfg.grad_clip_norm)
    for opt in t.optimizers:
        opt.step()
    return total / t.micro_per_rank


def compile_warmup(t: Trainer) -> None:
    """Run `warmup_steps` real steps (compilation happens here), then restore the initial weights,
    optimizer states and data position."""
    if t.cfg.warmup_steps <= 0:
        return
    initial_model = copy.deepcopy(t.model.state_dict())
    initial_opts = [copy.deepcopy(o.state_dict()) for o in t.optimizers]
    stream_state = t.loader.stream.state()
    # compile every computation and shape the run will meet before the clock starts: the run's
    # start, each stage of a growing context and its end (an add-on's switch lies between them)
    points = sorted({0.0, 1.0, *(start for start, _ in context_stages(t.cfg))})
    for w in range(t.cfg.warmup_steps):
        frac = points[w * len(points) // t.cfg.warmup_steps]
        if t.model._progress_hooks:
            t.model.set_train_progress(frac)
        apply_context(t, frac, log=False)
        optimizer_step(t, 0, 1.0)
        t.log.line(f"warmup_step:{w + 1}/{t.cfg.warmup_steps}")
    t.model.load_state_dict(initial_model)
    for o, s in zip(t.optimizers, initial_opts):
        o.load_state_dict(s)
    t.loader.stream.load_state(stream_state)
    disable_qat(t.model)
    t.qat_on = False
    t.model.set_train_progress(0.0)
    apply_context(t, 0.0, log=False)


def initial_context(cfg: TrainConfig, model: GPT) -> int:
    """The context the run starts in; with a schedule the add-ons are told it (without one they keep
    their own settings, e.g. doc_isolation's max_segment)."""
    length = context_at(cfg, 0.0)
    if cfg.seq_len_schedule:
        model.set_context(length)
    return length


def apply_context(t: Trainer, frac: float, log: bool = True) -> None:
    """Move to the training context of `frac` (a growing context's stage): the loader's row
    length, and the add-ons told (packed rows cut documents at it)."""
    length = context_at(t.cfg, frac)
    if length == t.context:
        return
    t.context = length
    t.model.set_context(length)
    if log:
        t.log.line(f"context step:{t.step} frac:{frac:.3f} seq_len:{length}")


def resume_from_disk(t: Trainer) -> None:
    """Continue from `run_dir/resume.safetensors`: weights, optimizers, averager, data, clock, QAT."""
    tensors, meta = load_resume(t.run_dir)
    restore(tensors, meta, t.model, t.optimizers, t.averager, t.loader, t.runtime.device)
    t.step, t.stop_after = meta["step"], meta["extra"].get("stop_after")
    t.clock.add(meta["clock_ms"])
    if meta["extra"].get("qat_on"):
        enable_qat(t.model, t.cfg.qat_bits)
        t.qat_on = True
    t.log.line(f"resumed at step {t.step} (train_time {meta['clock_ms']:.0f}ms)")


def validate(t: Trainer) -> None:
    """Score the validation stream with the clock paused, and log it."""
    training_ms = t.clock.pause()
    # On CPU a second graph for the eval shapes costs more compile time than it saves.
    scorer = t.compiled if t.runtime.device.type == "cuda" else t.model
    totals = evaluate_standard(scorer, t.val_tokens, t.tables, t.cfg.seq_len, t.preset.eval.batch_tokens,
                               t.runtime, limit=t.cfg.val_tokens_limit)
    t.val_loss, t.val_bpb = totals.loss, totals.bpb
    t.log.line(f"step:{t.step}/{t.cfg.iterations} val_loss:{t.val_loss:.4f} val_bpb:{t.val_bpb:.4f} "
               f"train_time:{training_ms:.0f}ms step_avg:{training_ms / max(t.step, 1):.2f}ms")
    t.log.metric(kind="val", step=t.step, val_loss=t.val_loss, val_bpb=t.val_bpb, train_time_ms=training_ms)
    if t.on_validation is not None:
        t.on_validation(t.step, t.val_loss, t.val_bpb)
    t.clock.resume()


def calibrate_in_cap(t: Trainer) -> None:
    """Collect GPTQ Hessians (training data or self-generated) on rank 0 with the training clock
    counting their time, and record whether they finished inside the cap."""
    cfg, clock = t.cfg, t.clock
    clock.pause()
    prov: dict = {}
    if t.writes:
        batches, prov = calibration_batches(t.model, cfg, t.data_dir, t.preset.model.vocab_size)
        prov = calibrate(t.model, batches, prov, t.run_dir)
        clock.add(1000 * prov["seconds"])
        prov["train_time_ms_at_end"] = clock.elapsed_ms
        prov["within_cap"] = clock.elapsed_ms <= 1000 * cfg.max_wallclock_seconds or cfg.max_wallclock_seconds <= 0
        write_json(t.run_dir / CALIBRATION_FILE, prov)  # the artifact will carry this record
        t.log.line(f"gptq_calibration source:{prov['source']} sequences:{cfg.gptq_calibration_sequences} "
                   f"seconds:{prov['seconds']:.2f} train_time:{clock.elapsed_ms:.0f}ms within_cap:{prov['within_cap']}")
        if not prov["within_cap"]:
            t.log.line("warning: GPTQ calibration ended after the training cap; raise train.gptq_reserve_seconds")
    if t.runtime.distributed:
        torch.distributed.barrier()
    clock.resume()
    t.calibration = prov


def prepare_final_weights(t: Trainer) -> None:
    """The weights to score and save: float (QAT off), averaged (EMA/SWA), calibrated if GPTQ packs them."""
    disable_qat(t.model)
    t.averager.apply_to(t.model)
    restore_fp32_embedding(t.model)
    if t.cfg.gptq_calibration_sequences > 0 and t.calibration is None:
        calibrate_in_cap(t)


def log_train_step(t: Trainer, loss: torch.Tensor, scale: float, approx_ms: float) -> None:
    if t.runtime.distributed:  # log the global batch's loss, not rank 0's share
        loss = all_reduce_sum_(loss.clone(), t.runtime) / t.runtime.world_size
    t.train_loss = float(loss)
    if not math.isfinite(t.train_loss):
        raise TrainingDiverged(f"train_loss became {t.train_loss} at step {t.step}; lower the learning rates "
                               "(train.matrix_lr, train.scalar_lr, train.tied_embed_lr) or set train.grad_clip_norm")
    t.log.line(f"step:{t.step}/{t.cfg.iterations} train_loss:{t.train_loss:.4f} "
               f"train_time:{approx_ms:.0f}ms step_avg:{approx_ms / t.step:.2f}ms")
    t.log.metric(kind="train", step=t.step, train_loss=t.train_loss, train_time_ms=approx_ms, lr_scale=scale)
    t.log.progress(approx_ms / 1000, loss=f"{t.train_loss:.3f}")


def data_record(t: Trainer, complete: bool) -> dict:
    record = {"dir": str(t.data_dir.resolve()), "tokenizer": str(t.tok_path.resolve())}
    if complete:
        manifest = read_manifest(t.data_dir) or {}
        record.update(tokenizer_sha256=file_sha256(t.tok_path), train_shards=[str(p) for p in t.loader.stream.paths],
                      manifest_split_rule=manifest.get("split_rule"))
    return record


def checkpoint_if_due(t: Trainer) -> None:
    """Every `checkpoint_every` steps and/or `checkpoint_minutes`: weights + state.json, then the
    resume file (state.json first: a resume file always has the run's preset and data beside it)."""
    cfg = t.cfg
    due = (cfg.checkpoint_every > 0 and t.step % cfg.checkpoint_every == 0) or (
        cfg.checkpoint_minutes > 0 and time.monotonic() - t.last_checkpoint >= 60 * cfg.checkpoint_minutes)
    if not (due and t.writes):
        return
    t.last_checkpoint = time.monotonic()
    save_checkpoint(t.run_dir, t.model, state_record(step=t.step, preset=t.preset.to_dict(),
                                                     data=data_record(t, complete=False), code=t.identity))
    save_resume(t.run_dir, t.step, t.model, t.optimizers, t.averager, t.loader, t.clock.now_ms(),
                {"stop_after": t.stop_after, "qat_on": t.qat_on})


def finish(t: Trainer) -> dict:
    """Log the final line, write the final checkpoint and state.json, and return the summary."""
    training_ms = t.clock.elapsed_ms
    t.log.line(f"final val_loss:{t.val_loss:.4f} val_bpb:{t.val_bpb:.4f} train_loss:{t.train_loss:.4f} "
               f"steps:{t.step} train_time:{training_ms:.0f}ms")
    summary = {
        "preset": t.preset.name,
        "steps": t.step,
        "train_time_ms": training_ms,
        "step_avg_ms": training_ms / max(t.step, 1),
        "tokens_seen": t.step * t.cfg.tokens_per_step,
        "model_params": count_parameters(t.model),
        "train_loss": t.train_loss,  # the last logged step's
        "val_loss": t.val_loss,
        "val_bpb": t.val_bpb,
        "val_tokens_scored_limit": t.cfg.val_tokens_limit,
        "world_size": t.runtime.world_size,
        "device": str(t.runtime.device),
        "calibration": t.calibration,
        "code": t.identity,
    }
    if t.writes:
        save_checkpoint(t.run_dir, t.model, state_record(
            step=t.step, preset=t.preset.to_dict(), data=data_record(t, complete=True), code=t.identity,
            summary=summary, train_config=asdict(t.cfg)))
    t.log.close()
    return summary


def train(preset: Preset, data_dir: str | Path, run_dir: str | Path | None, runtime: Runtime,
          tokenizer: str | Path | None = None, progress: bool | None = None, resume: bool = False,
          on_validation: Callable[[int, float, float], None] | None = None) -> dict:
    """Train `preset` on the shards in `data_dir`; write checkpoint and logs to `run_dir`.
    `resume` continues from `run_dir/resume.safetensors` (written every `checkpoint_every` steps
    and/or `checkpoint_minutes` of wallclock). `on_validation(step, val_loss, val_bpb)` is called
    after every validation (every `val_every` steps and at the end); it may raise to stop the run."""
    t = build_trainer(preset, data_dir, run_dir, runtime, tokenizer, progress)
    t.on_validation = on_validation
    cfg = t.cfg
    log_header(t)
    t.model.set_train_progress(0.0)  # a built model runs its final computation; training starts at 0
    compile_warmup(t)
    t.averager = build_averager(t.model, cfg)
    t.clock = TrainingClock(runtime)
    if resume:
        resume_from_disk(t)
    try:
        t.clock.resume()
        while True:
            last = t.step == cfg.iterations or (t.stop_after is not None and t.step >= t.stop_after)
            if last:
                prepare_final_weights(t)
            if last or (cfg.val_every > 0 and t.step % cfg.val_every == 0):
                validate(t)
            if last:
                break
            now_ms = t.clock.now_ms()
            frac = training_fraction(cfg, t.step, now_ms)
            if t.model.set_train_progress(frac):
                t.log.line(f"switch step:{t.step} frac:{frac:.3f} layer_order:{t.model.layer_order()}")
            apply_context(t, frac)
            scale = lr_multiplier(cfg, t.step, now_ms)
            loss = optimizer_step(t, t.step, scale, now_ms)
            t.step += 1
            t.averager.update(t.model, t.step, scale)
            approx_ms = t.clock.step_launched()
            if cfg.train_log_every > 0 and (t.step <= 10 or t.step % cfg.train_log_every == 0):
                log_train_step(t, loss, scale, approx_ms)
            if t.stop_after is None and cfg.max_wallclock_seconds > 0 and t.clock.agree(approx_ms >= training_cap_ms(cfg)):
                t.stop_after = t.step
            checkpoint_if_due(t)
        return finish(t)
    finally:
        t.log.close()  # also when a run stops early (an error, a sweep's pruner)
