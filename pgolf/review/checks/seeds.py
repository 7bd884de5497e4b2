"""Seeds: one configuration, all of its seeds, and the significance both ways.

Every seed's log must state the same settings (the printed hyperparameters, less the seed and run
names) and the same code (pgolf's code identity line); #2124 presented three seeds of mixed
configurations as one result. The submitted numbers must be the logs' own. Against earlier records
(`--against`), both rules are reported, each named: the README's (a gain of at least 0.005 nats at
p < 0.01, one-sided Welch) and the reviewers' chronological progression (PR #1902: a one-sided
Welch test of a lower mean at p < 0.25, against records dated before this one).
"""

from __future__ import annotations

import numpy as np

from pgolf.review.contest import README_ALPHA, README_MARGIN_NATS, REVIEWERS_ALPHA
from pgolf.review.evidence import Evidence, gather
from pgolf.review.logs import configuration, seed_of
from pgolf.review.result import NA, Result, conclude
from pgolf.submit.compare import lower_mean_test

NAME = "seeds"
SCORE_TOLERANCE = 5e-8  # the logs print 8 decimals


def seed_scores(ev: Evidence) -> list[tuple[int | None, float, float, str]]:
    """(seed, val_loss, val_bpb, where) of every log's submitted score."""
    out = []
    for log in ev.logs:
        s = log.final_score
        if s is not None:
            out.append((seed_of(log), s.val_loss, s.val_bpb, f"{log.path.name}:{s.line}"))
    return out


def p_lower(new: np.ndarray, ref: np.ndarray, margin: float) -> float:
    """p of H1: mean(new) < mean(ref) − margin; a single reference run is taken as a number."""
    return float(lower_mean_test(new, ref if ref.size >= 2 else float(ref.mean()), margin).pvalue)


def significance(ev: Evidence, against: list, notes: list[str]) -> None:
    losses = np.array([s[1] for s in seed_scores(ev)])
    date = (ev.submission or {}).get("date")
    for other in against:
        ref_ev = other if isinstance(other, Evidence) else gather(other)
        ref = np.array([s[1] for s in seed_scores(ref_ev)])
        if ref.size == 0 or losses.size < 2:
            notes.append(f"against {ref_ev.root.name}: needs 2+ seeds here and a score there")
            continue
        gain = float(ref.mean() - losses.mean())
        p_readme = p_lower(losses, ref, README_MARGIN_NATS)
        p_review = p_lower(losses, ref, 0.0)
        ref_date = (ref_ev.submission or {}).get("date")
        order = ("" if not (date and ref_date) else
                 f" ({ref_date} before {date})" if ref_date <= date else
                 f" (but {ref_ev.root.name} is dated {ref_date}, after this one: the progression compares with earlier records)")
        notes.append(f"against {ref_ev.root.name}: gain {gain:.5f} nats; README rule (>= {README_MARGIN_NATS} nats at "
                     f"p < {README_ALPHA}): p = {p_readme:.3g}, {'met' if p_readme < README_ALPHA and gain >= README_MARGIN_NATS else 'not met'}; "
                     f"reviewers' rule (lower mean at p < {REVIEWERS_ALPHA}): p = {p_review:.3g}, "
                     f"{'met' if p_review < REVIEWERS_ALPHA else 'not met'}{order}")


def check(ev: Evidence, options: dict) -> Result:
    flags, notes = [], []
    logs = [log for log in ev.logs if log.final_score is not None or log.hyperparameters]
    if len(logs) >= 2:
        configs = [(log, configuration(log)) for log in logs]
        base_log, base = configs[0]
        for log, cfg in configs[1:]:
            for key in sorted(set(base) | set(cfg)):
                if base.get(key) != cfg.get(key):
                    line = log.hyperparameters[key].line if key in log.hyperparameters else "-"
                    flags.append(f"{log.path.name}:{line}: {key} = {cfg.get(key, '(absent)')}, "
                                 f"{base_log.path.name} says {base.get(key, '(absent)')}")
        codes = {log.path.name: log.first("code_identity").value for log in logs if log.first("code_identity")}
        if len(set(codes.values())) > 1:
            flags.append("the logs ran different code: " + "; ".join(f"{k} {v}" for k, v in codes.items()))
        if not base and not codes:
            notes.append("the logs print no settings: the configuration cannot be compared")
    scores = seed_scores(ev)
    seeds = [s[0] for s in scores]
    if len(set(seeds)) < len(seeds):
        flags.append(f"the same seed twice among the logs: {seeds}")
    if scores:
        loss, bpb = np.array([s[1] for s in scores]), np.array([s[2] for s in scores])
        std = lambda a: float(a.std(ddof=1)) if a.size > 1 else float("nan")  # noqa: E731
        notes.append(f"{len(scores)} seed(s) {seeds}: val_bpb mean {bpb.mean():.8f} std {std(bpb):.5f}; "
                     f"val_loss mean {loss.mean():.8f} std {std(loss):.5f}")
        sub = ev.submission or {}
        for key, values in (("val_bpb", bpb), ("val_loss", loss)):
            if isinstance(sub.get(key), (int, float)) and abs(sub[key] - values.mean()) > SCORE_TOLERANCE * 10:
                flags.append(f"submission.json {key} {sub[key]} ≠ the logs' mean {values.mean():.8f}")
        per_seed = {str(k): v for k, v in (sub.get("seed_results") or {}).items()}
        per_seed |= {str(s.get("seed")): s for s in sub.get("seeds", []) if isinstance(s, dict)}
        for seed, l, b, where in scores:
            entry = per_seed.get(str(seed))
            if entry and isinstance(entry.get("val_bpb"), (int, float)) and abs(entry["val_bpb"] - b) > SCORE_TOLERANCE:
                flags.append(f"submission.json seed {seed}: val_bpb {entry['val_bpb']} ≠ {b} in {where}")
        listed = sub.get("seeds")
        if isinstance(listed, list) and listed and not isinstance(listed[0], dict):
            missing = sorted(set(map(str, listed)) - {str(s) for s in seeds})
            if missing:
                flags.append(f"submission.json names seeds {listed}; no log for {missing}")
    significance(ev, options.get("against", []), notes)
    if not flags and len(scores) < 2:
        return Result(NAME, NA, f"{len(scores)} scored seed(s): nothing to compare", notes)
    return conclude(NAME, flags, [], notes, f"{len(scores)} seeds of one configuration")

