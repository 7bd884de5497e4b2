"""Project measured per-GPU costs onto a target machine and say plainly what fits.

Training step on N GPUs = the measured step of one rank's share (batch / N, Muon on 1/N of the
matrices) + the collectives it skipped, costed as ring all-reduces at the target's bus bandwidth:
DDP's fp32 gradients and Muon's bf16 update buffer, each 2(N−1)/N · bytes / busbw. DDP overlaps
its all-reduce with the backward pass, so this is an upper bound. Evaluation scales linearly with
the number of GPUs (windows and TTT sequences are split across ranks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pgolf.config import Preset
from pgolf.plan.calibration import estimate_calibration
from pgolf.plan.hardware import Target, kind_of_device_name

CONTEST_TRAIN_SECONDS = 600.0
CONTEST_EVAL_SECONDS = 600.0
FINEWEB_VAL_TOKENS = 62_021_632  # scored tokens of the SP1024 FineWeb validation split (docs/techniques.md)


@dataclass
class Plan:
    preset: str
    target: str
    measured_on: str
    step_ms: float
    compute_ms: float
    comm_ms: float
    steps_in_cap: int
    steps_run: int
    tokens_trained: int
    mfu: float | None
    peak_memory_gib: float | None
    eval_seconds: dict[str, float]
    eval_pipeline: list[str]
    eval_pipeline_seconds: float | None
    verdicts: list[str] = field(default_factory=list)
    fits: bool = True
    eval_timed: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def ring_allreduce_ms(nbytes: float, gpus: int, busbw_gbs: float) -> float:
    if gpus <= 1:
        return 0.0
    return 2 * (gpus - 1) / gpus * nbytes / (busbw_gbs * 1e9) * 1000


def project(preset: Preset, target: Target, train: dict, evals: dict[str, dict],
            pipeline: list[str], val_tokens: int = FINEWEB_VAL_TOKENS) -> Plan:
    verdicts: list[str] = []
    measured_kind = kind_of_device_name(train["device"])
    if measured_kind is None:
        verdicts.append(f"note: measured on {train['device']!r}, not a GPU of a known kind; the projection "
                        f"assumes {target.kind.name} speed equals it, which is wrong by orders of magnitude on CPU")
    elif measured_kind.name != target.kind.name:
        verdicts.append(f"note: measured on {measured_kind.name}, projected for {target.kind.name} "
                        "assuming equal per-GPU speed")
    if train.get("emulated_gpus") != target.gpus:
        verdicts.append(f"note: the measurement emulated {train.get('emulated_gpus')} ranks, the target has "
                        f"{target.gpus}; re-measure for a faithful per-rank batch")
    compute = train["ms_per_step_per_gpu"]
    comm = (ring_allreduce_ms(train["grad_bytes"], target.gpus, target.kind.allreduce_busbw_gbs)
            + ring_allreduce_ms(train["muon_update_bytes"], target.gpus, target.kind.allreduce_busbw_gbs))
    step_ms = compute + comm
    cfg = preset.train
    train_seconds = (cfg.max_wallclock_seconds or CONTEST_TRAIN_SECONDS) - cfg.gptq_reserve_seconds
    steps_in_cap = int(train_seconds * 1000 // step_ms)
    steps_run = min(steps_in_cap, cfg.iterations)
    mfu = None
    if measured_kind is not None:
        flops = train["train_flops_per_token"] * train["tokens_per_step_per_gpu"] / (compute / 1000)
        mfu = flops / (measured_kind.bf16_tflops * 1e12)
    peak = train["peak_memory_bytes"] / 2**30 if train.get("peak_memory_bytes") else None

    fits = True
    if cfg.max_wallclock_seconds > CONTEST_TRAIN_SECONDS:
        fits = False
        verdicts.append(f"does NOT fit: train.max_wallclock_seconds {cfg.max_wallclock_seconds:g} > the contest's 600")
    verdicts.append(f"training: {steps_in_cap:,} steps fit in {train_seconds:g} s at {step_ms:.1f} ms/step "
                    f"({compute:.1f} compute + {comm:.2f} collectives)"
                    + (f"; the preset stops at iterations={cfg.iterations:,}" if steps_run < steps_in_cap else ""))
    calibration = estimate_calibration(preset, target.kind)
    if calibration is not None:
        verdicts.append(f"GPTQ calibration ({calibration.sequences:,} x {calibration.seq_len} {calibration.source}): "
                        f"~{calibration.seconds:.1f} s estimated of the {cfg.gptq_reserve_seconds:g} s reserved "
                        "inside the cap — " + ("fits" if calibration.fits else "does NOT fit"))
        fits &= calibration.fits
    elif cfg.gptq_reserve_seconds:
        verdicts.append(f"GPTQ calibration: {cfg.gptq_reserve_seconds:g} s reserved inside the cap")
    if peak is not None and peak > target.kind.memory_gib * 0.95:
        fits = False
        verdicts.append(f"does NOT fit: peak memory {peak:.1f} GiB per GPU > {target.kind.memory_gib:g} GiB")
    eval_seconds = {m: val_tokens / (e["tokens_per_s_per_gpu"] * target.gpus) for m, e in evals.items()}
    key = ",".join(pipeline)
    pipe_s = eval_seconds.get(key)
    if pipe_s is not None:
        ok = pipe_s <= CONTEST_EVAL_SECONDS
        fits &= ok
        verdicts.append(f"evaluation [{key}] on {val_tokens:,} tokens: {pipe_s:.0f} s of 600 — "
                        + ("fits" if ok else "does NOT fit"))
    return Plan(preset=preset.name, target=target.label, measured_on=train["device"], step_ms=step_ms,
                compute_ms=compute, comm_ms=comm, steps_in_cap=steps_in_cap, steps_run=steps_run,
                tokens_trained=steps_run * cfg.tokens_per_step, mfu=mfu, peak_memory_gib=peak,
                eval_seconds=eval_seconds, eval_pipeline=pipeline, eval_pipeline_seconds=pipe_s,
                verdicts=verdicts, fits=fits, eval_timed=pipe_s is not None)
