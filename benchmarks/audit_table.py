"""The audit over every legal method and every known-illegal fixture, on one artifact.

    python benchmarks/audit_table.py ARTIFACT --data DIR [--limit-tokens 8192] [--out FILE] [--rows 'a,b;c']

Prints one row per pipeline: each check's PASS/FLAG, the verdict, the expected verdict and the
audit's seconds. Method settings are scaled to a short stream (stated in the output).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pgolf.audit.run import audit_artifact
from pgolf.train.distributed import init_runtime

SETTINGS = ["evaluation.ttt.chunk_tokens=2048", "evaluation.ttt.epochs=1", "evaluation.ttt.lr=0.01",
            "evaluation.hedge.chunk_tokens=2048", "evaluation.hedge.min_tokens=2048",
            "evaluation.hedge.trigram_buckets=8192", "evaluation.slot.steps=8", "evaluation.slot_causal.steps=8",
            "evaluation.prequant_ttt.epochs=1", "evaluation.illegal_ngram_target_key.chunk_tokens=2048",
            "evaluation.illegal_target_only_norm.chunk_tokens=2048"]
# (pipeline, extra settings, expected verdict)
ROWS = [
    ("standard", [], "pass"), ("sliding", [], "pass"), ("sliding,ttt", [], "pass"),
    ("sliding,slot-causal", [], "pass"), ("sliding,hedge-normalized", [], "pass"),
    ("sliding,hedge-flattened", [], "pass"),
    ("sliding,ttt,slot-causal,hedge-normalized", [], "pass"),
    ("illegal-prequant-ttt,sliding", [], "flagged"), ("illegal-train-then-score-ttt,sliding", [], "flagged"),
    ("sliding,slot", ['evaluation.slot.variant="A"'], "flagged"),
    ("standard,slot", ['evaluation.slot.variant="B"'], "flagged"),
    ("sliding,slot", ['evaluation.slot.variant="C"'], "flagged"),
    ("sliding,illegal-ngram-target-key", [], "flagged"), ("sliding,illegal-target-only-norm", [], "flagged"),
    ("sliding,hedge", [], "flagged"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--limit-tokens", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--rows", help="only these pipelines (';'-separated, as in the table, e.g. 'sliding,hedge')")
    args = ap.parse_args()
    runtime = init_runtime("auto")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for methods, extra, expected in ROWS:
        if args.rows and methods not in args.rows.split(";"):
            continue
        r = audit_artifact(args.artifact, args.data, runtime, methods, SETTINGS + extra, limit=args.limit_tokens)
        label = methods + (f" [{extra[0].split('=')[1].strip(chr(34))}]" if extra else "")
        results.append({"pipeline": label, "expected": expected, **{k: r[k] for k in ("verdict", "flagged", "seconds", "bpb")},
                        "checks": {c["name"]: c["passed"] for c in r["checks"]},
                        "details": {c["name"]: c["detail"] for c in r["checks"] if not c["passed"]}})
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))
    names = ["future invariance", "score before adapt", "single pass", "normalization", "data provenance"]
    print(f"audit of {args.artifact}, first {args.limit_tokens:,} val tokens, {torch.get_num_threads()} thread(s); "
          f"settings: {' '.join(SETTINGS)}")
    head = f"{'pipeline':<44}" + "".join(f"{n.split()[0][:8]:>9}" for n in names) + f"{'verdict':>9}{'expected':>9}{'s':>7}"
    print(head)
    print("-" * len(head))
    for r in results:
        cells = "".join(f"{'pass' if r['checks'][n] else 'FLAG':>9}" for n in names)
        ok = "" if r["verdict"] == r["expected"] else "  <-- unexpected"
        print(f"{r['pipeline']:<44}{cells}{r['verdict']:>9}{r['expected']:>9}{r['seconds']:>7.1f}{ok}")
    return 0 if all(r["verdict"] == r["expected"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
