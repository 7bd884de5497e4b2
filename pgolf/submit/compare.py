"""The contest's significance rule for a record (the contest README): the new mean
val_loss must improve on the reference by at least 0.005 nats, shown by a one-sided Welch t-test at
p < 0.01. Against a stated number (`--against-loss`) this is the one-sample t-test of
H1: mean < ref − 0.005; against other runs, Welch's unequal-variance test of
H1: mean_new < mean_ref − 0.005 (scipy.stats).

`--against-bpb` is converted to nats with the runs' own tokens-per-byte ratio (same validation
set), loss = bpb · ln 2 · bytes / tokens, and says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from pgolf.errors import DataError
from pgolf.rundir import RESULTS_FILE, find_results

MARGIN_NATS = 0.005
ALPHA = 0.01


@dataclass
class RunScore:
    run: str
    seed: int | None
    val_loss: float
    val_bpb: float
    tokens: int
    bytes: int


def load_run(path: str | Path) -> RunScore:
    """A run directory (or its results.json) written by `pgolf run --out` / `pgolf seeds`."""
    p = Path(path)
    f = find_results(p) or (p / RESULTS_FILE if p.is_dir() else p)
    try:
        r = json.loads(f.read_text())
        ev = r["eval"]
        return RunScore(str(p), r.get("train", {}).get("seed", r.get("seed")), float(ev["val_loss"]),
                        float(ev["val_bpb"]), int(ev["tokens"]), int(ev["bytes"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{f}: not a pgolf results file ({exc.__class__.__name__}: {exc}); "
                        "pass run directories written by pgolf run --out or pgolf seeds") from None


def lower_mean_test(losses: np.ndarray, reference, margin: float = MARGIN_NATS):
    """One-sided test of H1: mean(losses) < reference − margin: Welch's against reference runs (an
    array), the one-sample test against a stated number (a float). scipy's result (statistic, pvalue)."""
    if isinstance(reference, np.ndarray):
        return stats.ttest_ind(losses, reference - margin, equal_var=False, alternative="less")
    return stats.ttest_1samp(losses, float(reference) - margin, alternative="less")


def seeds_needed(mean_gain: float, std: float, margin: float = MARGIN_NATS, alpha: float = ALPHA,
                 max_n: int = 1000) -> int | None:
    """Smallest n for which a one-sample t-test at the observed gain and spread would pass."""
    excess = mean_gain - margin
    if excess <= 0:
        return None
    if std == 0:
        return 2
    for n in range(2, max_n + 1):
        if excess / (std / math.sqrt(n)) > stats.t.ppf(1 - alpha, n - 1):
            return n
    return None


def compare(runs: list[RunScore], against_loss: float | None = None, against_bpb: float | None = None,
            against_runs: list[RunScore] | None = None) -> dict:
    if len(runs) < 2:
        raise DataError(f"the significance test needs at least 2 runs, got {len(runs)}")
    losses = np.array([r.val_loss for r in runs])
    out: dict = {"runs": [asdict(r) for r in runs], "n": len(runs), "mean_val_loss": float(losses.mean()),
                 "std_val_loss": float(losses.std(ddof=1)), "mean_val_bpb": float(np.mean([r.val_bpb for r in runs])),
                 "margin_nats": MARGIN_NATS, "alpha": ALPHA, "notes": []}
    if against_runs:
        ref = np.array([r.val_loss for r in against_runs])
        test = lower_mean_test(losses, ref)
        ref_mean = float(ref.mean())
        out["test"] = "one-sided Welch t-test, H1: mean < mean_ref − 0.005"
    else:
        if against_loss is None and against_bpb is not None:
            nats_per_bpb = math.log(2) * sum(r.bytes for r in runs) / sum(r.tokens for r in runs)
            against_loss = against_bpb * nats_per_bpb
            out["notes"].append(f"reference bpb {against_bpb} converted to {against_loss:.5f} nats with the runs' "
                                f"own bytes/token ratio")
        if against_loss is None:
            raise DataError("give a reference: --against-loss, --against-bpb or --against RUN...")
        ref_mean = float(against_loss)
        test = lower_mean_test(losses, ref_mean)
        out["test"] = "one-sided t-test against the stated reference, H1: mean < ref − 0.005"
    gain = ref_mean - float(losses.mean())
    p = float(test.pvalue)
    out.update(reference_val_loss=ref_mean, mean_gain_nats=gain, t=float(test.statistic), p_value=p,
               significant=bool(p < ALPHA and gain >= MARGIN_NATS))
    need = seeds_needed(gain, out["std_val_loss"])
    if out["significant"]:
        out["verdict"] = f"meets the rule: gain {gain:.4f} nats >= 0.005 at p = {p:.2g} < 0.01"
    elif need is None:
        out["verdict"] = (f"does NOT meet the rule: the mean gain {gain:.4f} nats is not above the 0.005 margin, "
                          "so no number of seeds at this spread will pass")
    else:
        out["verdict"] = (f"does NOT meet the rule yet (p = {p:.2g}); at the observed gain and spread about {need} "
                          f"seeds would pass ({max(need - len(runs), 0)} more)")
    out["seeds_needed"] = need
    return out
