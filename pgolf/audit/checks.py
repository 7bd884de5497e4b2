"""`pgolf audit`: five experimental checks of an evaluation pipeline (legality.md; issue "audit").

- future invariance: for sampled positions t, re-run the pipeline with every validation token
  after t+1 replaced (random tokens; and the target x_{t+1} repeated, which a method that adapts
  on targets would fit), and require the scores at positions ≤ t to stay the same (relative
  tolerance 1e-6: on CPU an unchanged computation reproduces its bits, so any change is real);
- score before adapt: every state update the methods report (weights, deltas, n-gram tables,
  mixer weights) used only targets before every position that state scores;
- single pass: every target scored exactly once, in increasing order;
- normalization: at sampled positions the scored distribution sums to 1 (±1e-6) over the full
  vocabulary;
- data provenance: the artifact's record shows training read only train shards and GPTQ
  calibration read train shards or self-generated text — never validation.
Each flag carries evidence (positions, the two values, the update that saw the token).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pgolf.audit.recorder import AuditRecorder
from pgolf.evaluate.pipeline import run_pipeline

TOLERANCE = 1e-6
MASS_TOLERANCE = 1e-6


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    evidence: list[Any] = field(default_factory=list)


def perturbations(tokens: np.ndarray, t: int, vocab: int, seed: int) -> dict[str, np.ndarray]:
    """Streams equal to `tokens` up to index t+1 (the target of position t) and different after."""
    rng = np.random.default_rng(seed)
    out = {}
    rand = tokens.copy()
    rand[t + 2 :] = rng.integers(0, vocab, tokens.size - t - 2)
    out["random suffix"] = rand
    rep = tokens.copy()
    rep[t + 2 :] = tokens[t + 1]
    out["target repeated"] = rep
    return out


def future_invariance(model, tokens, tables, preset, runtime, methods, overrides, base_scores, cuts: int,
                      seed: int = 0) -> Check:
    n = tokens.size - 1
    rng = np.random.default_rng(seed)
    # early cut points perturb most of the stream, so even a weak dependence on the future shows
    points = sorted(set(int(x) for x in rng.integers(max(n // 8, 1), max(n // 2, 2), cuts)))
    evidence = []
    for t in points:
        for label, stream in perturbations(tokens, t, preset.model.vocab_size, seed + t).items():
            other = run_pipeline(model, stream, tables, preset, runtime, methods, overrides=overrides,
                                 keep_scores=True).scores
            past = ~np.isnan(base_scores[: t + 1])
            a, b = base_scores[: t + 1][past], other[: t + 1][past]
            bad = np.nonzero(~np.isclose(a, b, rtol=TOLERANCE, atol=1e-9))[0]
            if bad.size:
                where = np.nonzero(past)[0][bad[0]]
                evidence.append({"perturbed_after": t + 1, "perturbation": label, "changed_positions": int(bad.size),
                                 "first_position": int(where), "p_before": float(np.exp(-a[bad[0]])),
                                 "p_after": float(np.exp(-b[bad[0]]))})
    detail = (f"{len(points)} cut points x 2 perturbations; scores at positions <= t unchanged"
              if not evidence else f"{len(evidence)} perturbation(s) changed earlier scores; first: "
              f"position {evidence[0]['first_position']} p {evidence[0]['p_before']:.6g} -> {evidence[0]['p_after']:.6g} "
              f"({evidence[0]['perturbation']} after {evidence[0]['perturbed_after']})")
    return Check("future invariance", not evidence, detail, evidence)


def provenance(meta: dict) -> Check:
    evidence = []
    shards = meta.get("data", {}).get("train_shards", [])
    val_read = [s for s in shards if "_val_" in Path(s).name]
    if val_read:
        evidence.append({"training_read": val_read})
    calib = meta.get("calibration") or {}
    source = calib.get("source")
    if source not in (None, "train", "self-generated"):
        evidence.append({"calibration_source": source})
    for f in calib.get("shards") or []:
        if "_val_" in Path(str(f)).name:
            evidence.append({"calibration_read": f})
    if not shards:
        return Check("data provenance", True, "no training record in the artifact (nothing to contradict)", [])
    detail = (f"training read {len(shards)} train shard(s); calibration: {source or 'none'}" if not evidence
              else f"validation data read before scoring: {evidence}")
    return Check("data provenance", not evidence, detail, evidence)


def audit_pipeline(model, tokens, tables, preset, runtime, methods: list[str], overrides=None,
                   cuts: int = 2, meta: dict | None = None) -> dict:
    t0 = time.perf_counter()
    rec = AuditRecorder(tokens.size - 1)
    base = run_pipeline(model, tokens, tables, preset, runtime, methods, overrides=overrides, observer=rec,
                        keep_scores=True)
    checks = [future_invariance(model, tokens, tables, preset, runtime, methods, overrides, base.scores, cuts)]
    v = rec.violations
    checks.append(Check("score before adapt", not v,
                        f"{rec.updates} state updates, all on targets before the positions they score" if not v
                        else f"{len(v)} update(s) used targets they then score; first: {v[0].describe()}",
                        [asdict(x) for x in v[:5]]))
    windows = next(m for m in base.methods if m["role"] == "windows")
    seq_len = windows["seq_len"]
    # standard windows score the contest's usable prefix ⌊N/T⌋·T; sliding scores every target
    scored = rec.counts if windows["method"] == "sliding" else rec.counts[: (rec.counts.size // seq_len) * seq_len]
    once = bool((scored == 1).all()) and rec.order_ok
    multi = np.nonzero(scored != 1)[0]
    checks.append(Check("single pass", once,
                        f"{scored.size:,} targets each scored once, in order" if once else
                        f"{multi.size} target(s) scored {sorted(set(scored[multi].tolist()))} times; first position "
                        f"{int(multi[0]) if multi.size else -1}; in order: {rec.order_ok}",
                        [{"position": int(p), "times": int(scored[p])} for p in multi[:5]]))
    masses = np.array([m for _, m in rec.masses]) if rec.masses else np.array([1.0])
    off = [(p, m) for p, m in rec.masses if abs(m - 1) > MASS_TOLERANCE]
    checks.append(Check("normalization", not off,
                        f"{len(rec.masses)} sampled positions, sum over vocab within 1e-6 of 1" if not off else
                        f"{len(off)} of {len(rec.masses)} sampled positions do not sum to 1 (max {masses.max():.4g}); "
                        f"first: position {off[0][0]} sums to {off[0][1]:.6g}",
                        [{"position": int(p), "sum": float(m)} for p, m in off[:5]]))
    checks.append(provenance(meta or {}))
    flagged = [c.name for c in checks if not c.passed]
    return {"methods": methods, "verdict": "flagged" if flagged else "pass", "flagged": flagged,
            "checks": [asdict(c) for c in checks], "tokens": int(tokens.size - 1),
            "bpb": base.totals.bpb, "seconds": time.perf_counter() - t0,
            "method_configs": base.methods}
