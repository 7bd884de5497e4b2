"""The training loop of the naive baseline (techniques.md §2.2–2.3), generalised by the preset.

- Compile warm-up: `warmup_steps` real steps trigger compilation, then the initial weights,
  optimizer states and data stream are restored (this is not an LR warm-up).
- The clock counts only training steps (warm-up and periodic validation are excluded); the run
  stops after the step at which it reaches `max_wallclock_seconds` (the max over ranks), and
  the LR reaches zero exactly there.
- `grad_accum` micro-batches per step are split across ranks, so the global batch and its order
  are the same for any number of ranks.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from pgolf.config import Preset
from pgolf.data.bpb import TorchByteTables
from pgolf.data.build import read_manifest, resolve_tokenizer
from pgolf.data.loader import DistributedTokenLoader
from pgolf.data.shards import check_vocab, load_split
from pgolf.data.tokenizer import build_byte_tables, file_sha256, load_tokenizer
from pgolf.errors import ConfigError, DataError
from pgolf.evaluate.standard import autocast_context, evaluate_standard
from pgolf.model.gpt import GPT, count_parameters
from pgolf.train.averaging import build_averager
from pgolf.train.checkpoint import save_checkpoint, write_json
from pgolf.train.clock import TrainingClock
from pgolf.train.resume import load_resume, restore, save_resume
from pgolf.train.distributed import Runtime, all_reduce_sum_, compile_module
from pgolf.train.optim.groups import build_optimizers
from pgolf.train.optim.muon import Muon
from pgolf.train.runlog import RunLog
from pgolf.train.qat import crown_q_penalty, disable_qat, enable_qat
from pgolf.quant.calibration import PROVENANCE_NAME, calibrate, calibration_batches
from pgolf.train.schedule import lr_multiplier, muon_momentum, training_cap_ms


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def load_eval_inputs(data_dir, tokenizer, vocab_size: int, device) -> tuple[np.ndarray, TorchByteTables, Path]:
    """Validation tokens and byte tables, with the vocab checks the contest script asserts."""
    tok_path = resolve_tokenizer(data_dir, tokenizer)
    sp = load_tokenizer(tok_path)
    if sp.vocab_size() != vocab_size:
        raise DataError(
            f"{tok_path}: tokenizer vocab {sp.vocab_size()} != model vocab {vocab_size}; "
            "use the tokenizer the shards were built with and a preset of the same vocab"
        )
    val = load_split(data_dir, "val")
    check_vocab(val, vocab_size, f"{data_dir} (val split)")
    tables = TorchByteTables(build_byte_tables(sp, vocab_size), device)
    return val, tables, tok_path


def want_compile(mode: str, runtime: Runtime) -> bool:
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"train.compile must be auto, on or off, got {mode!r}")
    return mode == "on" or (mode == "auto" and runtime.device.type == "cuda")


def train(preset: Preset, data_dir: str | Path, run_dir: str | Path | None, runtime: Runtime,
          tokenizer: str | Path | None = None, progress: bool | None = None,
          emulate_world_size: int = 1, resume: bool = False,
          after_step: Callable[[int, int], None] | None = None) -> dict:
    """Train `preset` on the shards in `data_dir`; write checkpoint and logs to `run_dir`.

    `emulate_world_size` is for the budget planner: one process does one rank's Muon share of an
    N-rank run (with the preset already cut to one rank's batch), to time it; the weights it
    produces are not a valid training run.

    `after_step(rank, step)` is called after every optimizer step (the CLI's test fault hook).

    `resume` continues from `run_dir/resume.safetensors` (written every `checkpoint_every` steps
    and/or `checkpoint_minutes` of wallclock).
    """
    cfg, mcfg = preset.train, preset.model
    micro_per_rank, rem = divmod(cfg.grad_accum, runtime.world_size)
    if micro_per_rank < 1 or rem:
        raise ConfigError(
            f"train.grad_accum {cfg.grad_accum} must be a positive multiple of the world size {runtime.world_size}"
        )
    if cfg.tokens_per_step % (cfg.grad_accum * cfg.seq_len):
        raise ConfigError(
            f"train.tokens_per_step {cfg.tokens_per_step} must be a multiple of grad_accum x seq_len "
            f"= {cfg.grad_accum * cfg.seq_len}"
        )
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None and runtime.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    val_tokens, tables, tok_path = load_eval_inputs(data_dir, tokenizer, mcfg.vocab_size, runtime.device)

    seed_everything(cfg.seed)
    model = GPT(mcfg).to(runtime.device)
    n_params = count_parameters(model)
    optimizers = build_optimizers(model, cfg, tied=mcfg.tie_embeddings)
    muon = next(o for o in optimizers if isinstance(o, Muon))
    muon.emulate_world_size = emulate_world_size
    compiled = compile_module(model) if want_compile(cfg.compile, runtime) else model
    train_model = DDP(compiled, device_ids=[runtime.local_rank] if runtime.device.type == "cuda" else None,
                      broadcast_buffers=False, gradient_as_bucket_view=True) if runtime.distributed else compiled
    loader = DistributedTokenLoader(data_dir, runtime.rank, runtime.world_size, runtime.device,
                                    vocab_size=mcfg.vocab_size)

    log = RunLog(run_dir, runtime.is_main, progress, cfg.max_wallclock_seconds)
    log.line(f"preset:{preset.name} model_params:{n_params} world_size:{runtime.world_size} "
             f"grad_accum_steps:{micro_per_rank} device:{runtime.device}")
    log.line(f"train_tokens_per_step:{cfg.tokens_per_step} seq_len:{cfg.seq_len} "
             f"iterations:{cfg.iterations} max_wallclock_seconds:{cfg.max_wallclock_seconds:.3f} seed:{cfg.seed}")
    log.line(f"val_loader tokens:{val_tokens.size - 1} tokenizer:{tok_path}")

    qat_on = False

    def run_step(step: int, scale: float) -> torch.Tensor:
        nonlocal qat_on
        if cfg.qat_bits and not qat_on and scale < cfg.qat_start_lr_scale:
            moved = enable_qat(model, cfg.qat_bits)
            qat_on = True
            log.line(f"late_qat:on step:{step} bits:{cfg.qat_bits} lr_scale:{scale:.3f} "
                     f"mean_weight_change:{moved:.3e}")
            log.metric(kind="qat", step=step, bits=cfg.qat_bits, mean_weight_change=moved)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        total = torch.zeros((), device=runtime.device)
        for micro in range(micro_per_rank):
            x, y = loader.next_batch(cfg.tokens_per_step, cfg.seq_len, micro_per_rank)
            if runtime.distributed:
                train_model.require_backward_grad_sync = micro == micro_per_rank - 1
            with autocast_context(runtime):
                loss = train_model(x, y)
            objective = loss
            if qat_on and cfg.crown_q_lambda > 0:
                objective = loss + crown_q_penalty(model, cfg.crown_q_lambda, cfg.crown_q_qmax)
            (objective / micro_per_rank).backward()
            total += loss.detach()
        for g in muon.param_groups:
            g["momentum"] = muon_momentum(cfg, step)
        for opt in optimizers:
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * scale
        if cfg.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
        for opt in optimizers:
            opt.step()
        return total / micro_per_rank

    if cfg.warmup_steps > 0:
        # Compile warm-up: run real steps, then restore the initial state and data position.
        initial_model = copy.deepcopy(model.state_dict())
        initial_opts = [copy.deepcopy(o.state_dict()) for o in optimizers]
        stream_state = loader.stream.state()
        for w in range(cfg.warmup_steps):
            run_step(0, 1.0)
            log.line(f"warmup_step:{w + 1}/{cfg.warmup_steps}")
        model.load_state_dict(initial_model)
        for o, s in zip(optimizers, initial_opts):
            o.load_state_dict(s)
        loader.stream.load_state(stream_state)
        disable_qat(model)
        qat_on = False
    averager = build_averager(model, cfg)

    def validate() -> tuple[float, float]:
        # On CPU a second graph for the eval shapes costs more compile time than it saves.
        scorer = compiled if runtime.device.type == "cuda" else model
        totals = evaluate_standard(scorer, val_tokens, tables, cfg.seq_len, preset.eval.batch_tokens,
                                   runtime, limit=cfg.val_tokens_limit)
        return totals.loss, totals.bpb

    calibration: dict | None = None

    def calibrate_in_cap() -> dict:
        """Collect GPTQ Hessians (training data or self-generated) with the training clock running (rank 0)."""
        clock.pause()
        prov: dict = {}
        if runtime.is_main and run_dir is not None:
            batches, prov = calibration_batches(model, cfg, data_dir, mcfg.vocab_size)
            prov = calibrate(model, batches, prov, run_dir)
            clock.add(1000 * prov["seconds"])
            prov["train_time_ms_at_end"] = clock.elapsed_ms
            prov["within_cap"] = clock.elapsed_ms <= 1000 * cfg.max_wallclock_seconds or cfg.max_wallclock_seconds <= 0
            write_json(Path(run_dir) / PROVENANCE_NAME, prov)  # the artifact will carry this record
            log.line(f"gptq_calibration source:{prov['source']} sequences:{cfg.gptq_calibration_sequences} "
                     f"seconds:{prov['seconds']:.2f} "
                     f"train_time:{clock.elapsed_ms:.0f}ms within_cap:{prov['within_cap']}")
            if not prov["within_cap"]:
                log.line("warning: GPTQ calibration ended after the training cap; raise train.gptq_reserve_seconds")
        if runtime.distributed:
            torch.distributed.barrier()
        clock.resume()
        return prov

    clock = TrainingClock(runtime)
    stop_after: int | None = None
    step = 0
    last_checkpoint = time.monotonic()
    if resume:
        tensors, meta = load_resume(run_dir)
        restore(tensors, meta, model, optimizers, averager, loader, runtime.device)
        step, stop_after = meta["step"], meta["extra"].get("stop_after")
        clock.add(meta["clock_ms"])
        if meta["extra"].get("qat_on"):
            enable_qat(model, cfg.qat_bits)
            qat_on = True
        log.line(f"resumed at step {step} (train_time {meta['clock_ms']:.0f}ms)")
    val_loss = val_bpb = train_loss = float("nan")
    clock.resume()
    while True:
        last = step == cfg.iterations or (stop_after is not None and step >= stop_after)
        if last:
            disable_qat(model)  # score and save the float weights the exporter will quantize
            averager.apply_to(model)  # final weights = the average (EMA/SWA), if any
            if cfg.gptq_calibration_sequences > 0 and calibration is None:
                calibration = calibrate_in_cap()
        if last or (cfg.val_every > 0 and step % cfg.val_every == 0):
            training_ms = clock.pause()
            val_loss, val_bpb = validate()
            log.line(f"step:{step}/{cfg.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} "
                     f"train_time:{training_ms:.0f}ms step_avg:{training_ms / max(step, 1):.2f}ms")
            log.metric(kind="val", step=step, val_loss=val_loss, val_bpb=val_bpb, train_time_ms=training_ms)
            clock.resume()
        if last:
            break
        scale = lr_multiplier(cfg, step, clock.now_ms())
        loss = run_step(step, scale)
        step += 1
        averager.update(model, step, scale)
        approx_ms = clock.step_launched()
        if cfg.train_log_every > 0 and (step <= 10 or step % cfg.train_log_every == 0):
            if runtime.distributed:  # log the global batch's loss, not rank 0's share
                loss = all_reduce_sum_(loss.clone(), runtime) / runtime.world_size
            train_loss = float(loss)
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"train_loss became {train_loss} at step {step}; lower the learning rates")
            log.line(f"step:{step}/{cfg.iterations} train_loss:{train_loss:.4f} "
                     f"train_time:{approx_ms:.0f}ms step_avg:{approx_ms / step:.2f}ms")
            log.metric(kind="train", step=step, train_loss=train_loss, train_time_ms=approx_ms, lr_scale=scale)
            log.progress(approx_ms / 1000, loss=f"{train_loss:.3f}")
        if stop_after is None and cfg.max_wallclock_seconds > 0:
            if clock.agree(approx_ms >= training_cap_ms(cfg)):
                stop_after = step
        if after_step is not None:
            after_step(runtime.rank, step)
        due = (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0) or (
            cfg.checkpoint_minutes > 0 and time.monotonic() - last_checkpoint >= 60 * cfg.checkpoint_minutes)
        if due and run_dir and runtime.is_main:
            last_checkpoint = time.monotonic()
            # state.json first: a resume file on disk always has the run's preset and data beside it
            save_checkpoint(run_dir, model, {"step": step, "complete": False, "preset": preset.to_dict(),
                                             "data": {"dir": str(Path(data_dir).resolve()),
                                                      "tokenizer": str(Path(tok_path).resolve())}})
            save_resume(run_dir, step, model, optimizers, averager, loader, clock.now_ms(),
                        {"stop_after": stop_after, "qat_on": qat_on})
    training_ms = clock.elapsed_ms
    log.line(f"final val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} steps:{step} train_time:{training_ms:.0f}ms")
    summary = {
        "preset": preset.name,
        "steps": step,
        "train_time_ms": training_ms,
        "step_avg_ms": training_ms / max(step, 1),
        "tokens_seen": step * cfg.tokens_per_step,
        "model_params": n_params,
        "train_loss": train_loss,  # the last logged step's
        "val_loss": val_loss,
        "val_bpb": val_bpb,
        "val_tokens_scored_limit": cfg.val_tokens_limit,
        "world_size": runtime.world_size,
        "device": str(runtime.device),
        "calibration": calibration,
    }
    if run_dir is not None and runtime.is_main:
        manifest = read_manifest(data_dir) or {}
        state = {
            "complete": True,
            "step": step,
            "preset": preset.to_dict(),
            "summary": summary,
            "data": {"dir": str(Path(data_dir).resolve()), "tokenizer": str(Path(tok_path).resolve()),
                     "tokenizer_sha256": file_sha256(tok_path),
                     "train_shards": [str(p) for p in loader.stream.paths],
                     "manifest_split_rule": manifest.get("split_rule")},
            "train_config": asdict(cfg),
        }
        save_checkpoint(run_dir, model, state)
    log.close()
    return summary
