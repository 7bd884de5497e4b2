"""What the whole-evaluation audit record costs: each pipeline scored with and without the recorder.

    python benchmarks/audit_overhead.py ARTIFACT --data DIR [--tokens 131072] [--repeats 2] [--out FILE]

Both runs of a pipeline score the same validation tokens with the same settings (the preset's,
at defaults); they alternate, and the fastest of `--repeats` runs of each is kept, so machine
noise counts against neither. The table gives seconds without and with the recorder and the
overhead as a fraction of the evaluation without it (the target is < 10%).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pgolf.artifact.format import read_artifact
from pgolf.artifact.load import model_from_artifact
from pgolf.audit.stream import stream_recorder, stream_verdict
from pgolf.config import preset_from_dict
from pgolf.evaluate.pipeline import run_pipeline
from pgolf.runtime import init_runtime
from pgolf.data.validation import load_eval_inputs

PIPELINES = ["standard", "sliding", "sliding,ttt", "sliding,slot-causal", "sliding,hedge-normalized"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--tokens", type=int, default=131_072, help="validation tokens scored per run (0 = all)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--pipelines", default=";".join(PIPELINES), help="';'-separated method lists")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    runtime = init_runtime("auto")
    artifact = read_artifact(args.artifact)
    preset = preset_from_dict(artifact.preset)
    val, tables, _ = load_eval_inputs(args.data, None, preset.model.vocab_size, runtime.device)
    model = model_from_artifact(artifact, runtime.device)
    n = min(args.tokens, val.size - 1) if args.tokens > 0 else val.size - 1
    rows = []
    for spec in args.pipelines.split(";"):
        methods = spec.split(",")
        plain, recorded, verdict, samples = [], [], "", 0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run_pipeline(model, val, tables, preset, runtime, methods, limit=n)
            plain.append(time.perf_counter() - t0)
            rec = stream_recorder(n)
            t0 = time.perf_counter()
            run_pipeline(model, val, tables, preset, runtime, methods, limit=n, observer=rec)
            v = stream_verdict(rec, runtime)
            recorded.append(time.perf_counter() - t0)
            verdict, samples = v["verdict"], v["samples"]
        rows.append({"pipeline": spec, "tokens": n, "seconds_plain": min(plain), "seconds_recorded": min(recorded),
                     "overhead": min(recorded) / min(plain) - 1, "samples": samples, "verdict": verdict,
                     "all_plain": plain, "all_recorded": recorded})
        if args.out:
            args.out.write_text(json.dumps(rows, indent=1))
    print(f"whole-evaluation audit record on {args.artifact.name}: {n:,} val tokens, best of {args.repeats}, "
          f"{torch.get_num_threads()} thread(s), {runtime.device}")
    head = f"{'pipeline':<28}{'plain s':>9}{'recorded s':>12}{'overhead':>10}{'samples':>9}{'verdict':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['pipeline']:<28}{r['seconds_plain']:>9.1f}{r['seconds_recorded']:>12.1f}"
              f"{r['overhead']:>+10.1%}{r['samples']:>9}{r['verdict']:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
