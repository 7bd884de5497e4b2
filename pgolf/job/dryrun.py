"""`pgolf run --preset P --dry-run`: the whole contest pipeline of a preset, on CPU in about a
minute, before paying for 8 GPUs.

The model keeps its full shape; only the token budget shrinks: a few training steps on one
short sequence per step (no compile, no clock cap; a growing context at short lengths, every stage
visited), in-cap GPTQ calibration on a few sequences
when the preset calibrates, pack with the preset's own settings, its own legal evaluation
methods on a few thousand validation tokens (windows and TTT chunks shrunk so every adaptive
method updates several times), the audit (two cut points, one after the last state update; no
black-box probe at full shape on a CPU), and the export in the preset's code wrapper. Bytes are
reported twice: measured on the dry-run weights (untrained weights compress worse than trained
ones), and projected for trained weights (pgolf.artifact.estimate). With the `pergroup` compressor
the measurement codes every group with rANS alone (`DRY_RUN_PERGROUP_BACKENDS`) — an upper bound of
the full search, which also tries Brotli-11 and LZMA-9e per group: most of record-2135's pack
stage (108 s -> 27 s) for a difference of 1-9 % per group (rANS won every group measured). Of
several `layouts` only the first is tried, for the same reason and with the same guarantee. An
evaluation method's compile warm-up runs one round. A TTT batch holds at most `DRY_RUN_BATCH_DOCS`
documents: the dry run's few thousand tokens hold a few dozen documents, and the records' 64 slots of
per-document LoRA at full shape allocate ~380 M adapter parameters and their Adam state, and warm
up over them, for documents that are not there (record-2135: 48 of its 58 s of scoring went to that
set-up; the audit already shrinks its own batches); smaller batches also put more batch boundaries,
where phased TTT acts, inside the stream. Short-document chunks (`short_chunks`) stay on:
the dry-run chunk doubles and the short ones take half of it, so both sizes are scored in about
the steps of one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from pgolf.config import Preset
from pgolf.evaluate.methods.base import load_methods
from pgolf.job.preset import with_overrides

TRAIN_SEQ_LEN = 128
TRAIN_STEPS = 2
EVAL_SEQ_LEN = 256
CALIBRATION_SEQUENCES = 4
CALIBRATION_SEQ_LEN_SELF = 32  # self-generated sampling is one forward per token
DRY_RUN_PERGROUP_BACKENDS = ["ans"]
DRY_RUN_BATCH_DOCS = 8


def short_context_schedule(stages: list, length: int = TRAIN_SEQ_LEN) -> tuple[str, int]:
    """A growing context at short lengths — each stage's length relative to the last, rounded to a
    power of two, times `length`, so every length divides a row of `length` — and the fewest steps
    that visit every stage (step k trains at fraction k / steps)."""
    pairs = [(float(a), int(b)) for a, b in stages]
    longest = max(b for _, b in pairs)
    small = [[a, max(length >> max(round(math.log2(longest / b)), 0), 8)] for a, b in pairs]
    ends = [a for a, _ in pairs[1:]] + [1.0]
    steps = TRAIN_STEPS
    while not all(any(a <= k / steps < e for k in range(steps)) for (a, _), e in zip(pairs, ends)):
        steps += 1
    return json.dumps(small), steps


def dry_run_overrides(preset: Preset, eval_tokens: int) -> list[str]:
    t = preset.train
    steps = TRAIN_STEPS
    schedule = []
    if t.seq_len_schedule:
        small, steps = short_context_schedule(t.seq_len_schedule)
        schedule = [f"train.seq_len_schedule={small}"]
    sets = [f"train.iterations={steps}", "train.warmup_steps=0", "train.max_wallclock_seconds=0",
            f"train.seq_len={TRAIN_SEQ_LEN}", "train.grad_accum=1", f"train.tokens_per_step={TRAIN_SEQ_LEN}",
            "train.val_every=0", f"train.val_tokens_limit={eval_tokens}", 'train.compile="off"',
            "train.checkpoint_every=0", "train.checkpoint_minutes=0", "train.train_log_every=1",
            f"eval.seq_len={EVAL_SEQ_LEN}", f"eval.batch_tokens={EVAL_SEQ_LEN * 8}", *schedule]
    if t.gptq_calibration_sequences > 0:
        seq = CALIBRATION_SEQ_LEN_SELF if t.gptq_calibration_source == "self" else TRAIN_SEQ_LEN
        sets += [f"train.gptq_calibration_sequences={CALIBRATION_SEQUENCES}", f"train.gptq_calibration_seq_len={seq}"]
    names = list(preset.evaluation.get("methods") or [])
    registry = load_methods(names)
    for section in dict.fromkeys(registry.get(n).section for n in names):
        fields = {f.name for cls in (registry.get(n) for n in names) if cls.section == section
                  for f in dataclasses.fields(cls.Options)}
        if "seq_len" in fields:
            sets.append(f"evaluation.{section}.seq_len={EVAL_SEQ_LEN}")
        if "batch_docs" in fields and _option(preset, registry, names, section, "batch_docs") > DRY_RUN_BATCH_DOCS:
            sets.append(f"evaluation.{section}.batch_docs={DRY_RUN_BATCH_DOCS}")
        if "warmup_steps" in fields and _option(preset, registry, names, section, "warmup_steps") > 1:
            # a compile warm-up compiles nothing here (compile is off): one round shows it runs
            sets.append(f"evaluation.{section}.warmup_steps=1")
        if "chunk_tokens" in fields:  # several chunks, so TTT and the mixers adapt more than once
            cap = max(eval_tokens // 4, EVAL_SEQ_LEN)
            if "seq_len" in fields:  # a chunk never spans more than one window
                cap = min(cap, EVAL_SEQ_LEN)
            chunk = min(_option(preset, registry, names, section, "chunk_tokens"), cap)
            short = (preset.evaluation.get(section) or {}).get("short_chunks") if "short_chunks" in fields else None
            if short:  # both paths exercised at about the plain steps: chunks twice as long, short ones half that
                chunk = min(2 * chunk, cap)
                sets.append(f"evaluation.{section}.short_chunks={json.dumps([[n, max(c, chunk // 2)] for n, c in short])}")
            sets.append(f"evaluation.{section}.chunk_tokens={chunk}")
    return sets


def _option(preset: Preset, registry, names: list[str], section: str, key: str) -> int:
    """The preset's value of evaluation.SECTION.KEY, or the method's default."""
    table = preset.evaluation.get(section) or {}
    if key in table:
        return int(table[key])
    cls = next(registry.get(n) for n in names if registry.get(n).section == section)
    return int(next(f.default for f in dataclasses.fields(cls.Options) if f.name == key))


def dry_run(preset: Preset, data: Path | None = None, tokenizer: str | None = None, out: Path | None = None,
            eval_tokens: int = 2048, include_illegal: bool = False, strict_budget: bool = False,
            progress: bool | None = None) -> dict:
    from pgolf.job.run import run_main_job

    from pgolf.quant.pergroup import available_backends

    overrides = dry_run_overrides(preset, eval_tokens)
    small = with_overrides(preset, overrides)  # keeps the preset's name
    narrowed = [b for b in DRY_RUN_PERGROUP_BACKENDS if b in available_backends()] or None
    r = run_main_job(small, data=data, tokenizer=tokenizer, out=out, device="cpu", progress=progress,
                     limit_val_tokens=eval_tokens, include_illegal=include_illegal, strict_budget=strict_budget,
                     audit_tokens=eval_tokens, fit_preset=preset, audit_cuts=2, pergroup_backends=narrowed,
                     only_layouts=(preset.pack.layouts or ["packed"])[:1])
    proj = r["projection"]
    code = proj["code_bytes"]  # the real preset's export (the dry run's differs only in its embedded settings)
    measured = r["pack"]["model_bytes"] + code
    budget = proj["budget_bytes"]
    r["dry_run"] = {
        "overrides": overrides,
        "params": r["train"]["model_params"],
        "measured_total_bytes": measured, "measured_fits": measured <= budget,
        "measured_headroom_bytes": budget - measured,
        # pergroup coded by these backends only: the measurement bounds the full search's from above
        "measured_pergroup_backends": r["pack"].get("pergroup_backends"),
        "measured_layouts": r["pack"]["layouts_tried"],  # the first of the preset's: also an upper bound
        "preset_layouts": list(preset.pack.layouts or ["packed"]),
        "projected_total_bytes": proj["total_bytes"], "projected_fits": proj["fits"],
        "projected_headroom_bytes": proj["headroom_bytes"],
        "code_bytes": code, "code_wrapper": preset.pack.code_wrapper,
        "seconds": sum(s["seconds"] for s in r["stages"]),
    }
    return r
