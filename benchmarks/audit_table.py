"""The audit over every legal method, every known-illegal fixture and the fixtures built to evade
it, on one artifact, at the methods' default settings.

    python benchmarks/audit_table.py ARTIFACT --data DIR [--stream-tokens 49152] [--out FILE] [--rows 'a,b;c']

Prints one row per pipeline: each check's PASS/FLAG on the audit's window (chosen by the audit
so every method is seen adapting; its shrunk chunk sizes are stated in the JSON), the
whole-evaluation record over the first `--stream-tokens` validation tokens ("stream": the
checks it flagged), the verdict, the expected verdict and the audit's seconds. `--settings`
adds preset overrides (none by default).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pgolf.audit.run import audit_artifact
from pgolf.runtime import init_runtime

SETTINGS: list[str] = []
# (pipeline, extra settings, expected verdict)
ROWS = [
    ("standard", [], "pass"), ("sliding", [], "pass"), ("sliding,ttt", [], "pass"),
    ("sliding,slot-causal", [], "pass"), ("sliding,hedge-normalized", [], "pass"),
    ("sliding,hedge-flattened", [], "pass"), ("sliding,ngram-tilt", [], "pass"),
    ("sliding,ttt,slot-causal,hedge-normalized", [], "pass"),
    ("doc-sliding,lora-ttt", [], "pass"), ("sliding,phased", [], "pass"),
    ("doc-sliding,lora-ttt,phased", [], "pass"), ("doc-sliding,lora-ttt,phased,hedge-normalized", [], "pass"),
    ("doc-sliding,illegal-val-warmup-lora-ttt", [], "flagged"),
    ("illegal-prequant-ttt,sliding", [], "flagged"), ("illegal-train-then-score-ttt,sliding", [], "flagged"),
    ("sliding,slot", ['evaluation.slot.variant="A"'], "flagged"),
    ("standard,slot", ['evaluation.slot.variant="B"'], "flagged"),
    ("sliding,slot", ['evaluation.slot.variant="C"'], "flagged"),
    ("sliding,illegal-ngram-target-key", [], "flagged"), ("sliding,illegal-target-only-norm", [], "flagged"),
    ("hedge", [], "flagged"), ("sliding,hedge", [], "flagged"),
    ("sliding,illegal-late-unnormalized", [], "flagged"), ("sliding,illegal-late-train-first-ttt", [], "flagged"),
    ("sliding,illegal-late-peek", [], "flagged"), ("sliding,illegal-misreported-mixer", [], "flagged"),
    ("sliding,illegal-byte-ppm", [], "flagged"), ("sliding,illegal-ngram-tilt-gated", [], "flagged"),
]
NAMES = ["future invariance", "score before adapt", "single pass", "normalization", "scored = reported",
         "normalization (black box)", "window coverage", "data provenance"]
SHORT = ["future", "score1st", "single", "norm", "scored=", "blackbox", "coverage", "provnce"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--limit-tokens", type=int, default=None, help="audit window (default: the audit's choice)")
    ap.add_argument("--stream-tokens", type=int, default=49_152,
                    help="validation tokens of the whole-evaluation record (0 = all)")
    ap.add_argument("--settings", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--rows", help="only these pipelines (';'-separated, as in the table, e.g. 'sliding,hedge')")
    args = ap.parse_args()
    runtime = init_runtime("auto")
    if args.threads:
        torch.set_num_threads(args.threads)
    done = {}
    if args.out and args.out.is_file():  # resume: keep rows already audited
        done = {r["pipeline"]: r for r in json.loads(args.out.read_text())}
    results = []
    for methods, extra, expected in ROWS:
        label = methods + (f" [{extra[0].split('=')[1].strip(chr(34))}]" if extra else "")
        if label in done:  # rows audited before are kept (and printed) whatever --rows says
            results.append(done[label])
            continue
        if args.rows and methods not in args.rows.split(";"):
            continue
        r = audit_artifact(args.artifact, args.data, runtime, methods, SETTINGS + args.settings + extra,
                           limit=args.limit_tokens, stream_tokens=args.stream_tokens)
        results.append({"pipeline": label, "expected": expected, "window": r["tokens"],
                        **{k: r[k] for k in ("verdict", "flagged", "seconds", "bpb", "settings")},
                        "checks": {c["name"]: c["passed"] for c in r["checks"]},
                        "details": {c["name"]: c["detail"] for c in r["checks"] if not c["passed"]},
                        "evidence": {c["name"]: c["evidence"][:1] for c in r["checks"] if not c["passed"]},
                        "stream": {"flagged": r["stream"]["flagged"], "seconds": r["stream"]["seconds"],
                                   "details": {c["name"]: c["detail"] for c in r["stream"]["checks"]
                                               if not c["passed"]}}})
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))
    print(f"audit of {args.artifact}, {torch.get_num_threads()} thread(s), default method settings"
          + (f" + {' '.join(SETTINGS + args.settings)}" if SETTINGS + args.settings else "")
          + (f"; whole-evaluation record on the first {args.stream_tokens:,} val tokens" if args.stream_tokens
             else "; whole-evaluation record on all val tokens"))
    head = (f"{'pipeline':<40}{'window':>7}" + "".join(f"{n:>9}" for n in SHORT)
            + f"  {'stream':<22}{'verdict':>8}{'expected':>9}{'s':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        cells = "".join(f"{('pass' if r['checks'][n] else 'FLAG') if n in r['checks'] else '-':>9}" for n in NAMES)
        stream = ",".join(SHORT[NAMES.index(n)] for n in r["stream"]["flagged"]) or "pass"
        ok = "" if r["verdict"] == r["expected"] else "  <-- unexpected"
        print(f"{r['pipeline']:<40}{r['window']:>7}{cells}  {stream:<22}{r['verdict']:>8}{r['expected']:>9}"
              f"{r['seconds']:>6.0f}{ok}")
    return 0 if all(r["verdict"] == r["expected"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
