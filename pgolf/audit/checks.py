"""`pgolf audit`: five experimental checks of an evaluation pipeline (docs/legality.md).

- future invariance: for sampled positions t, re-run the pipeline with every validation token
  after t+1 replaced (random tokens; and the target x_{t+1} repeated, which a method that adapts
  on targets would fit), and require the scores at positions ≤ t to stay the same (relative
  tolerance 1e-6: on CPU an unchanged computation reproduces its bits, so any change is real);
- score before adapt: every state update the methods report (weights, deltas, n-gram tables,
  mixer weights) used only targets before every position that state scores;
- single pass: every target scored exactly once, in increasing order (document windows: in
  increasing order within each document, documents of one batch interleaved);
- normalization: at sampled positions the distribution the method reports sums to 1 (±1e-6) over
  the full vocabulary;
- scored = reported: what it scored there is −log of that distribution at the target (±1e-4);
- normalization (black box): at a few positions the pipeline scores every vocabulary id as the
  target and the probabilities must sum to 1 — nothing the method reports is used (probe.py);
- window coverage: the window saw every adaptive method update at least twice and score past
  its warm-up (window.py), else "window too short to see METHOD adapt";
- data provenance: the artifact's record shows training read only train shards and GPTQ
  calibration read train shards or self-generated text — never validation; and the bytes the
  scorer charges over every target equal the original UTF-8 bytes of the validation documents
  (data built with a text transform charges them from its sidecar, and must match exactly; the
  piece table of plain data may credit fewer, the bytes hidden in <unk>, which is reported).
Each flag carries evidence (positions, the two values, the update that saw the token).

Normalization and score-before-adapt are also recorded over a whole evaluation (stream.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pgolf.audit.probe import normalization_probe
from pgolf.audit.recorder import AuditRecorder
from pgolf.audit.window import DEFAULT_WINDOW, audit_settings
from pgolf.evaluate.pipeline import in_stream_order, run_pipeline, scoring_view, windows_options

TOLERANCE = 1e-6
MASS_TOLERANCE = 1e-6
CONSISTENCY_TOLERANCE = 1e-4  # nats; the reported distribution is float64, scores may be float32
ADAPTIVE_ROLES = ("prepare", "adapt", "fit", "mix")


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


def cut_points(n: int, cuts: int, last_update: int, seed: int = 0) -> list[int]:
    """Positions t spread over the window (early ones perturb most of the stream, so even a weak
    dependence on the future shows), and one after the last state update."""
    rng = np.random.default_rng(seed)
    spread = max(cuts - 1, 1) if last_update >= 0 else cuts
    lo, hi = max(n // 8, 1), max(n * 3 // 4, 2)
    edges = np.linspace(lo, hi, spread + 1)
    points = {int(rng.integers(int(a), max(int(b), int(a) + 1))) for a, b in zip(edges[:-1], edges[1:])}
    if last_update >= 0 and cuts > 1:
        points.add(min(last_update + max((n - 1 - last_update) // 2, 0), n - 2))
    return sorted(p for p in points if 0 <= p <= n - 2)


def future_invariance(model, tokens, tables, preset, runtime, methods, overrides, base_scores, cuts: int,
                      seed: int = 0, last_update: int = -1, layout=None) -> Check:
    n = tokens.size - 1
    points = cut_points(n, cuts, last_update, seed)
    evidence = []
    for t in points:
        for label, stream in perturbations(tokens, t, preset.model.vocab_size, seed + t).items():
            # only the scores up to t are compared: the rerun stops once they are all final. Its
            # warm-ups are skipped: a legal one leaves nothing behind, and one that does (or reads the
            # stream) makes these scores differ from the recorded pass's, which ran it
            other = run_pipeline(model, stream, tables, preset, runtime, methods, overrides=overrides,
                                 keep_scores=True, layout=layout, score_through=t, warmup=False).scores
            past = ~np.isnan(base_scores[: t + 1])
            a, b = base_scores[: t + 1][past], other[: t + 1][past]
            bad = np.nonzero(~np.isclose(a, b, rtol=TOLERANCE, atol=1e-9))[0]
            if bad.size:
                where = np.nonzero(past)[0][bad[0]]
                evidence.append({"perturbed_after": t + 1, "perturbation": label, "changed_positions": int(bad.size),
                                 "first_position": int(where), "p_before": float(np.exp(-a[bad[0]])),
                                 "p_after": float(np.exp(-b[bad[0]]))})
    detail = (f"cut points {', '.join(map(str, points))} x 2 perturbations; scores at positions <= t unchanged"
              if not evidence else f"{len(evidence)} perturbation(s) changed earlier scores; first: "
              f"position {evidence[0]['first_position']} p {evidence[0]['p_before']:.6g} -> {evidence[0]['p_after']:.6g} "
              f"({evidence[0]['perturbation']} after {evidence[0]['perturbed_after']})")
    return Check("future invariance", not evidence, detail, evidence)


def evaluation_order(tokens, preset, methods, overrides, view) -> Check:
    """What the order of scoring reads from the stream. Stream order reads nothing. A re-laid order
    may read each document's length and nothing else: with every document's content replaced
    (random tokens, BOS positions kept) it must re-lay the documents exactly as before."""
    if view is None:
        return Check("evaluation order", True, "documents scored in stream order")
    bos_id = windows_options(preset, methods, overrides)[1].bos_id
    bos = tokens == bos_id
    draw = np.random.default_rng(0).integers(0, preset.model.vocab_size - 1, tokens.size)
    other = np.where(bos, bos_id, draw + (draw >= bos_id)).astype(tokens.dtype)  # content anew, BOS kept
    again = scoring_view(other, preset, methods, overrides)
    same = again is not None and np.array_equal(again.source, view.source) and (
        (again.batch_chunks is None) == (view.batch_chunks is None)
        and (view.batch_chunks is None or np.array_equal(again.batch_chunks, view.batch_chunks)))
    docs = int(view.length_rank.size)
    detail = (f"{docs:,} documents scored {view.order} (re-laid by their lengths; the same order with every "
              "document's content replaced), so a score may depend on every document's length but on no "
              "other document's content scored after it (#1855's queue, accepted by the contest's reviewers)")
    if view.batch_chunks is not None:
        detail += "; each batch's chunk is chosen by its longest document's length, the same with the content replaced"
    if not same:
        detail = f"the {view.order} order or a batch's chunk changed when the documents' content changed (lengths kept)"
    return Check("evaluation order", same, detail, [] if same else [{"order": view.order}])


def byte_accounting(tables, manifest: dict | None, n_tokens: int) -> dict:
    """What the scorer charges over every target of the validation stream (positions 0…N−2),
    against the original bytes the build recorded."""
    record: dict = {"source": "sidecar" if hasattr(tables, "sidecar") else "piece table"}
    if hasattr(tables, "sidecar"):
        record["charged"] = int(tables.sidecar[1:n_tokens].sum())
    val = ((manifest or {}).get("splits") or {}).get("val") or {}
    record["original"] = val.get("utf8_bytes")
    if record["source"] == "piece table":
        record["charged"] = val.get("counted_bytes")
    return record


def _bytes_finding(record: dict | None) -> tuple[str, list]:
    if not record:
        return "", []
    charged, original = record.get("charged"), record.get("original")
    if original is None:
        return "; bytes: no build manifest, the original byte count is unknown", []
    if record["source"] == "sidecar":
        if charged == original:
            return f"; bytes: the sidecar charges exactly the {original:,} original bytes", []
        return (f"; bytes: the sidecar charges {charged:,} bytes for {original:,} original bytes",
                [{"charged_bytes": charged, "original_bytes": original}])
    return (f"; bytes: the piece table credits {charged:,} of {original:,} original bytes "
            f"({original - charged:,} hidden in <unk> or dropped by the normaliser, as the contest counts)", [])


def provenance(meta: dict, byte_record: dict | None = None) -> Check:
    bytes_detail, bytes_evidence = _bytes_finding(byte_record)
    evidence = list(bytes_evidence)
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
        return Check("data provenance", not evidence,
                     "no training record in the artifact (nothing to contradict)" + bytes_detail, evidence)
    read = [e for e in evidence if "charged_bytes" not in e]
    detail = (f"training read {len(shards)} train shard(s); calibration: {source or 'none'}" if not read
              else f"validation data read before scoring: {read}") + bytes_detail
    return Check("data provenance", not evidence, detail, evidence)


def recorded_checks(rec: AuditRecorder) -> list[Check]:
    """Score before adapt, normalization and scored = reported, from what a recorder saw (a window or
    a whole run)."""
    v = rec.violations
    checks = [Check("score before adapt", not v,
                    f"{rec.updates:,} state updates, all on targets before the positions they score" if not v
                    else f"{rec.violation_count:,} update(s) used targets they then score; first: {v[0].describe()}",
                    [asdict(x) for x in v[:5]])]
    off = [(p, m) for p, m in rec.masses if abs(m - 1) > MASS_TOLERANCE]
    span = (f"positions {min(p for p, _ in rec.masses):,}..{max(p for p, _ in rec.masses):,}" if rec.masses
            else "no positions")
    masses = np.array([m for _, m in rec.masses]) if rec.masses else np.ones(1)
    checks.append(Check("normalization", not off,
                        f"{len(rec.masses):,} sampled positions ({span}), reported distribution sums to 1 within 1e-6"
                        if not off else
                        f"{len(off)} of {len(rec.masses)} sampled positions do not sum to 1 (max {masses.max():.4g}); "
                        f"first: position {off[0][0]} sums to {off[0][1]:.6g}",
                        [{"position": int(p), "sum": float(m)} for p, m in off[:5]]))
    bad = [(p, a, b) for p, a, b in rec.consistency
           if not np.isclose(a, b, rtol=CONSISTENCY_TOLERANCE, atol=CONSISTENCY_TOLERANCE)]
    checks.append(Check("scored = reported", not bad,
                        f"at {len(rec.consistency):,} sampled positions the scored nats equal −log of the reported "
                        "distribution at the target" if not bad else
                        f"{len(bad)} of {len(rec.consistency)} sampled positions scored a value other than the "
                        f"reported distribution's; first: position {bad[0][0]} scored {bad[0][1]:.6g} nats, the "
                        f"distribution gives {bad[0][2]:.6g}",
                        [{"position": int(p), "scored_nats": float(a), "distribution_nats": float(b)}
                         for p, a, b in bad[:5]]))
    return checks


def coverage(rec: AuditRecorder, settings, described: list[dict]) -> Check:
    """Every adaptive method updated at least twice and scored past its warm-up inside the window."""
    rows, evidence = [], []
    for m in described:
        if m["role"] not in ADAPTIVE_ROLES:
            continue
        name = m["method"]
        seen = rec.by_method.get(name)
        count = seen.count if seen else 0
        active = rec.active_from(name, settings.warmups.get(name, 0))
        needed = settings.needed.get(name, 0)
        if needed > settings.window or count < 2 or active is None:
            why = (f"needs >= {needed:,} targets, the window has {settings.window:,}" if needed > settings.window
                   else f"{count} update(s)" + ("" if active is not None else ", none past its warm-up "
                                                f"({settings.warmups.get(name, 0):,} targets)"))
            evidence.append({"method": name, "updates": count, "needed_targets": needed, "window": settings.window})
            rows.append(f"window too short to see {name} adapt ({why})")
        else:
            rows.append(f"{name}: {count:,} updates, active from position {active:,}")
    if not rows:
        rows.append("no adaptive method")
    if settings.notes:
        rows.append("audit settings: " + "; ".join(settings.notes))
    return Check("window coverage", not evidence, "; ".join(rows), evidence)


def audit_pipeline(model, tokens, tables, preset, runtime, methods: list[str], overrides=None,
                   cuts: int = 3, meta: dict | None = None, window: int | None = None,
                   probe_positions: int = 2, byte_record: dict | None = None) -> dict:
    """`window` None: the smallest window that shows every adaptive method active (≥ 8192 targets,
    at most the stream); the reruns use `tokens[: window + 1]`."""
    t0 = time.perf_counter()
    available = tokens.size - 1
    if window is None and available < DEFAULT_WINDOW:
        window = available  # a short stream: size every method's settings to what is there
    settings = audit_settings(preset, methods, overrides, window)
    settings.window = min(settings.window, available)
    tokens = tokens[: settings.window + 1]
    over = settings.overrides
    # An evaluation that re-lays the documents (doc-sliding's longest-first order) is audited in its
    # own order: every check below runs on the view, and `evaluation order` checks what the order reads.
    view = scoring_view(tokens, preset, methods, over)
    order_check = evaluation_order(tokens, preset, methods, over, view)
    layout = None
    if view is not None:
        tokens, tables, layout = view.tokens, tables.reordered(view.source), view.layout
        over, overrides = in_stream_order(preset, methods, over), in_stream_order(preset, methods, overrides)
    rec = AuditRecorder(tokens.size - 1)
    base = run_pipeline(model, tokens, tables, preset, runtime, methods, overrides=over, observer=rec,
                        keep_scores=True, layout=layout)
    checks = [future_invariance(model, tokens, tables, preset, runtime, methods, over, base.scores, cuts,
                                last_update=rec.last_update(), layout=layout)]
    recorded = recorded_checks(rec)
    checks.append(recorded[0])
    windows = next(m for m in base.methods if m["role"] == "windows")
    seq_len = windows["seq_len"]
    # standard windows score the contest's usable prefix ⌊N/T⌋·T; sliding scores every target
    every = windows["method"] in ("sliding", "doc-sliding")
    scored = rec.counts if every else rec.counts[: (rec.counts.size // seq_len) * seq_len]
    order = "in order within each document" if rec.doc_starts is not None else "in order"
    once = bool((scored == 1).all()) and rec.order_ok
    multi = np.nonzero(scored != 1)[0]
    checks.append(Check("single pass", once,
                        f"{scored.size:,} targets each scored once, {order}" if once else
                        f"{multi.size} target(s) scored {sorted(set(scored[multi].tolist()))} times; first position "
                        f"{int(multi[0]) if multi.size else -1}; {order}: {rec.order_ok}",
                        [{"position": int(p), "times": int(scored[p])} for p in multi[:5]]))
    checks += recorded[1:]
    if probe_positions > 0:
        passed, detail, evidence, notes, secs = normalization_probe(model, tokens, tables, preset, runtime, methods,
                                                                    overrides, count=probe_positions,
                                                                    layout=layout)
        checks.append(Check("normalization (black box)", passed,
                            f"{detail} ({secs:.1f} s; probe settings: {'; '.join(notes)})", evidence))
    checks.append(coverage(rec, settings, base.methods))
    checks.append(order_check)
    checks.append(provenance(meta or {}, byte_record))
    flagged = [c.name for c in checks if not c.passed]
    return {"methods": methods, "verdict": "flagged" if flagged else "pass", "flagged": flagged,
            "checks": [asdict(c) for c in checks], "tokens": int(tokens.size - 1),
            "bpb": base.totals.bpb, "seconds": time.perf_counter() - t0, "settings": settings.notes,
            "method_configs": base.methods}
