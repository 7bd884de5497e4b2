"""Timing: training and evaluation against 600 s each, by the script's timers, by the work the
log shows outside them, and by the wall clock where the log carries timestamps.

- Training: the timer's stop (`stopping_early … train_time`, pgolf's `final … train_time`) must be
  ≤ 600 s. GPTQ calibration reads training data, so it is training: calibration the log shows after
  the stop (#1855's `GPTQ:collected … in 4.7s` after a 0.5 s reserve) pushes the total over —
  `suspect`, since the reviewers accepted #1855 so (PR #1902), while the later compliance reruns
  (#1950, #1956) kept training + Hessians under 600 s; `--strict` counts it as a FLAG. pgolf runs
  calibration inside the clock and logs `within_cap`.
- Evaluation: the eval timer (`total_eval_time`, `eval_time`) must be ≤ 600 s. Work before the timer
  that the records excluded (compile warm-up on random tokens, artifact decompression) is added
  as `suspect` when the sum passes 600 s (accepted in practice). Where the log stamps the start and
  the end of an evaluation, the wall clock between them must be ≤ 600 s too: a timer that says
  550 s over 700 s of wall clock is a FLAG (#1972 ran 688 s).
"""

from __future__ import annotations

from pgolf.review.contest import EVAL_CAP_S, TRAIN_CAP_S
from pgolf.review.evidence import Evidence
from pgolf.review.result import NA, Result, conclude

NAME = "timing"


def check(ev: Evidence, options: dict) -> Result:
    flags, suspects, notes = [], [], []
    for log in ev.logs:
        name = log.path.name
        stop = log.last("wallclock_stop") or _max_fact(log.all("train_time_ms"))
        if stop is not None:
            train_s = stop.value / 1000
            notes.append(f"{stop.where(log)}: training timer {train_s:.1f} s")
            if train_s > TRAIN_CAP_S:
                flags.append(f"{stop.where(log)}: training ran {train_s:.1f} s by its own timer, over {TRAIN_CAP_S:g} s")
            cal = log.last("calibration_after_stop_s")
            if cal is not None and cal.line > stop.line:
                total = train_s + cal.value
                reserve = log.hyperparameters.get("gptq_reserve_seconds")
                said = f" (reserve {reserve.value} s)" if reserve is not None else ""
                line = (f"{cal.where(log)}: GPTQ calibration on training data {cal.value:.1f} s after the training "
                        f"stop{said}: {total:.1f} s of training in all")
                if total > TRAIN_CAP_S:
                    (flags if options.get("strict") else suspects).append(
                        line + f", over {TRAIN_CAP_S:g} s (accepted for #1855 by the reviewers; a strict reading rejects it)")
                else:
                    notes.append(line)
        for late in log.all("calibration_over_cap"):
            flags.append(f"{late.where(log)}: in-cap GPTQ calibration ended after the training cap")
        evals = [s for s in log.scores if s.evaluation and s.eval_ms is not None and not s.name.startswith("diagnostic")]
        total_eval = log.last("total_eval_s")
        timed = [(total_eval.value, total_eval.line)] if total_eval is not None else []
        timed += [(s.eval_ms / 1000, s.line) for s in evals if total_eval is None]
        for seconds, line in timed:
            notes.append(f"{name}:{line}: evaluation timer {seconds:.1f} s")
            if seconds > EVAL_CAP_S:
                flags.append(f"{name}:{line}: evaluation ran {seconds:.1f} s by its own timer, over {EVAL_CAP_S:g} s")
        start = log.first("eval_start")
        if start is not None and timed:
            before = {key: [f for f in log.all(key) if f.line < start.line] for key in ("compile_warmup_s", "decompress_s")}
            # the last decompression before the timer is the scored model's; earlier ones fed diagnostics
            outside = ([("compile warm-up", f) for f in before["compile_warmup_s"]]
                       + [("decompression", f) for f in before["decompress_s"][-1:]])
            extra = sum(f.value for _, f in outside)
            seconds = max(t for t, _ in timed)
            if extra:
                line = (f"{name}: {extra:.1f} s before the eval timer (" + ", ".join(
                    f"{label} {f.value:.1f} s at line {f.line}" for label, f in outside)
                    + f"): {seconds + extra:.1f} s of evaluation in all")
                if seconds + extra > EVAL_CAP_S:
                    (flags if options.get("strict") else suspects).append(
                        line + f", over {EVAL_CAP_S:g} s (excluded by every phased-TTT record, accepted in practice)")
                else:
                    notes.append(line)
        for s in evals:  # wall clock between a stamped start and a stamped result
            begin = [f for f in log.all("eval_start") if f.line < s.line]
            if not begin or s.stamp is None:
                continue
            t0 = log.stamp_at(begin[-1].line, after=True)
            if t0 is None or t0 > s.stamp:
                continue
            wall = (s.stamp - t0).total_seconds()
            notes.append(f"{name}:{begin[-1].line}-{s.line}: {wall:.1f} s of wall clock for {s.name} "
                         f"(its timer: {s.eval_ms / 1000:.1f} s)")
            if wall > EVAL_CAP_S:
                flags.append(f"{name}:{begin[-1].line}-{s.line}: the evaluation {s.name} took {wall:.1f} s of wall "
                             f"clock, over {EVAL_CAP_S:g} s, while its timer says {s.eval_ms / 1000:.1f} s")
    if not (flags or suspects or notes):
        return Result(NAME, NA, "the logs state no training or evaluation times")
    return conclude(NAME, flags, suspects, notes, f"training and evaluation within {TRAIN_CAP_S:g} s each")


def _max_fact(facts):
    return max(facts, key=lambda f: f.value) if facts else None
