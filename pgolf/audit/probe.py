"""Normalization by experiment: the contest's black-box test ("if you score all token ids at a
given position, do the probabilities sum to 1?", its ruling on byte-level PPM mixtures).

At a position t the pipeline runs on the stream cut right after t's target, so t is the last
target scored. When it reaches t's batch it scores t once per vocabulary id v, with the target
set to v in the stream itself and every method's state copied as it is at that moment (future
invariance makes that state the same for every v). The check is Σ_v exp(−score_v) = 1. A few
candidates are also scored by a full rerun of the pipeline on the changed stream, and must agree:
a method keeping state a copy does not capture fails the check rather than fooling it. Nothing
the method reports is used: a method whose `distribution()` differs from what it scores is
caught here. The probe runs short windows (settings in `pgolf.audit.window.probe_settings`) so
every adaptive state has updated and V scorings stay cheap.
"""

from __future__ import annotations

import time

import numpy as np

from pgolf.audit.window import probe_settings
from pgolf.evaluate.pipeline import run_pipeline

PROBE_SEQ_LEN = 64
PROBE_WINDOW = 384  # six probe windows: chunks of 96, every adaptive state updated before t
MASS_TOLERANCE = 1e-6


class CandidateProbe:
    """Pipeline observer that asks for every candidate's score at the stream's last target."""

    def __init__(self, position: int, vocab: int) -> None:
        self.counterfactual_position = position
        self.vocab = vocab
        self.scores: np.ndarray | None = None
        self.true_score: float | None = None

    def on_counterfactual(self, t: int, rescore) -> None:
        self.scores = rescore(range(self.vocab))

    def on_scored(self, positions, nll, **_) -> None:
        hit = np.nonzero(np.asarray(positions) == self.counterfactual_position)[0]
        if hit.size:
            self.true_score = float(nll[int(hit[0])])

    def on_update(self, **_) -> None:
        pass


def probe_positions(window: int, count: int) -> list[int]:
    """Last positions of probe windows spread over the window, the last one included (they are
    window ends, so standard windows score them)."""
    ends = np.linspace(window, window // 2, max(count, 1)).astype(int) // PROBE_SEQ_LEN * PROBE_SEQ_LEN
    return sorted({int(e) - 1 for e in ends[:count] if e >= PROBE_SEQ_LEN})


def normalization_probe(model, tokens: np.ndarray, tables, preset, runtime, methods: list[str],
                        overrides: dict | None = None, count: int = 2, window: int = PROBE_WINDOW, verify: int = 2,
                        layout=None):
    """(Check fields) — passed, detail, evidence, notes, seconds. `layout`: as for the pipeline
    (a stream re-laid in a length order)."""
    t0 = time.perf_counter()
    window = min(window, (tokens.size - 1) // PROBE_SEQ_LEN * PROBE_SEQ_LEN)
    settings = probe_settings(preset, methods, overrides, window, PROBE_SEQ_LEN)
    V = preset.model.vocab_size
    results = []
    for t in probe_positions(window, count):
        stream = np.array(tokens[: t + 2], copy=True)  # its own copy: the probe writes candidates into it
        probe = CandidateProbe(t, V)
        run_pipeline(model, stream, tables, preset, runtime, methods, overrides=settings.overrides, observer=probe,
                     layout=layout)
        if probe.scores is None:
            raise RuntimeError(f"the pipeline never scored position {t} (probe)")
        mass = float(np.exp(-probe.scores.astype(np.float64)).sum())
        true_v = int(tokens[t + 1])
        replays = {true_v: probe.true_score}
        # the copied states must score like a real rerun: check some candidates the slow way
        rng = np.random.default_rng(t)
        for v in rng.choice(np.delete(np.arange(V), true_v), size=min(verify, V - 1), replace=False).tolist():
            other = stream.copy()
            other[t + 1] = v
            replays[v] = float(run_pipeline(model, other, tables, preset, runtime, methods,
                                            overrides=settings.overrides, keep_scores=True,
                                            layout=layout).scores[t])
        mismatch = {v: (float(probe.scores[v]), s) for v, s in replays.items()
                    if not np.isclose(probe.scores[v], s, rtol=1e-6, atol=1e-9)}
        results.append({"position": t, "sum": mass, "candidates": V, "reruns_checked": sorted(replays),
                        "rerun_mismatch": {int(v): list(x) for v, x in mismatch.items()}})
    off = [r for r in results if abs(r["sum"] - 1) > MASS_TOLERANCE]
    replay_bad = [r for r in results if r["rerun_mismatch"]]
    if not results:
        detail = f"window of {window} targets too short for a probe"
        return False, detail, [], settings.notes, time.perf_counter() - t0
    sums = ", ".join(f"{r['sum']:.9g}" for r in results)
    if off:
        detail = (f"{len(off)} of {len(results)} probed positions do not sum to 1 over all {V} token ids; first: "
                  f"position {off[0]['position']} sums to {off[0]['sum']:.6g}")
    elif replay_bad:
        detail = (f"scoring candidates from copied states disagrees with a full rerun at position "
                  f"{replay_bad[0]['position']} (candidates {sorted(replay_bad[0]['rerun_mismatch'])}): the methods keep "
                  "state the probe cannot copy, so it cannot vouch for normalization")
    else:
        detail = (f"all {V} token ids scored at positions {', '.join(str(r['position']) for r in results)}: "
                  f"Σ exp(−score) = {sums}")
    return not off and not replay_bad, detail, off or replay_bad, settings.notes, time.perf_counter() - t0
