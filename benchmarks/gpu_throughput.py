"""Contest-scale training and evaluation throughput on a GPU, and the 8xH100 projection.

For each preset (contest scale, as shipped): the real trainer runs `--steps` steps of one rank's
share of an `--gpus`-GPU run (batch / N, Muon on 1/N of the matrices) after its compile warm-up;
we report ms/step and tokens/s per GPU, peak memory, MFU against the measured GPU's dense bf16
peak, and the projected step on the target with the collectives added (`pgolf.plan.project`).
Each evaluation method (and each preset's whole pipeline, where all its methods exist) is timed
on `--eval-tokens` random tokens and projected to the 62,021,632-token FineWeb validation set.
Ratios are against `naive-baseline` measured in the same run; the contest's own baseline logs
43.54 ms/step on 8xH100 (docs/techniques.md), shown as a check of the projection.

    python benchmarks/gpu_throughput.py [--presets a,b] [--steps 20] [--json] [--out FILE]
    python benchmarks/gpu_throughput.py --presets record-1855 \
        --variant 'flex=model.addons.doc_isolation.kernel="flex"' \
        --variant 'varlen-packed=model.addons.doc_isolation.kernel="varlen",model.addons.doc_isolation.max_segment=2048,train.packed_rows=true'

`--variant NAME=OVERRIDE[,OVERRIDE...]` measures each preset again with those overrides, as the row
`PRESET[NAME]` (e.g. the document-isolation kernels: boolean mask, flex, FlashAttention varlen).

Needs CUDA. The JSON (`--out`) is what `pgolf plan PRESET --from-bench FILE` reads.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from pgolf.job.preset import load_preset, with_overrides
from pgolf.data.corpus import build_default_shards
from pgolf.plan.hardware import parse_target
from pgolf.plan.measure import device_name
from pgolf.plan.planner import measure_preset, preset_pipeline
from pgolf.plan.project import project
from pgolf.runtime import init_runtime

PRESETS = ["naive-baseline", "record-549", "seed-1150-ttt-slot", "seed-1207-hydra", "seed-1488-slot24",
           "seed-731-hedge", "seed-700-hedge-crownq"]
CONTEST_BASELINE_MS_8XH100 = 43.54


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--gpus", default="8xH100", help="target to project onto (default 8xH100)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eval-tokens", type=int, default=1 << 20)
    ap.add_argument("--out", type=Path, help="write the JSON here (for pgolf plan --from-bench)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDE[,OVERRIDE...]",
                    help="also measure each preset with these overrides, as row PRESET[NAME]")
    args = ap.parse_args()
    variants = [("", [])] + [parse_variant(v) for v in args.variant]
    runtime = init_runtime("auto")
    if runtime.device.type != "cuda":
        sys.exit("gpu_throughput: needs a CUDA device (see benchmarks/train_throughput.py for CPU)")
    target = parse_target(args.gpus)
    bench = {"device": device_name(runtime), "torch": torch.__version__, "emulated_gpus": target.gpus,
             "target": target.label, "rows": {}, "plans": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data_by_vocab: dict[int, Path] = {}
        for base_name, (label, overrides) in [(n, v) for n in args.presets.split(",") for v in variants]:
            preset = with_overrides(load_preset(base_name), overrides)
            name = f"{base_name}[{label}]" if label else base_name
            vocab = preset.model.vocab_size
            if vocab not in data_by_vocab:
                data_by_vocab[vocab] = build_default_shards(Path(tmp) / f"v{vocab}", vocab, progress=False)
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            row = measure_preset(preset, target.gpus, data_by_vocab[vocab], runtime, args.steps, args.eval_tokens)
            bench["rows"][name] = row
            bench["plans"][name] = project(preset, target, row["train"], row["eval"], preset_pipeline(preset)).as_dict()
            if args.out:  # keep what is measured so far if a later row fails
                args.out.write_text(json.dumps(bench, indent=1, sort_keys=True))
    if args.json:
        print(json.dumps(bench, sort_keys=True))
        return 0
    base = bench["plans"].get("naive-baseline")
    print(f"device {bench['device']}, torch {bench['torch']}; per-GPU share of {target.label}, "
          f"{args.steps} timed steps after compile warm-up")
    head = (f"{'preset':<22}{'params':>12}{'tok/step/GPU':>13}{'ms/step':>9}{'tok/s/GPU':>11}{'MFU':>7}"
            f"{'peak GiB':>9}{'proj ms':>9}{'steps/600s':>11}{'vs naive':>9}")
    print(head)
    print("-" * len(head))
    for name, row in bench["rows"].items():
        t, p = row["train"], bench["plans"][name]
        ratio = base["step_ms"] / p["step_ms"] if base else float("nan")
        print(f"{name:<22}{t['params']:>12,}{t['tokens_per_step_per_gpu']:>13,}{t['ms_per_step_per_gpu']:>9.1f}"
              f"{t['tokens_per_s_per_gpu']:>11,.0f}{p['mfu']:>7.1%}{p['peak_memory_gib']:>9.1f}{p['step_ms']:>9.1f}"
              f"{p['steps_in_cap']:>11,}{ratio:>8.2f}x")
    if base:
        print(f"naive-baseline projected {base['step_ms']:.1f} ms/step vs the contest's logged "
              f"{CONTEST_BASELINE_MS_8XH100} ms on 8xH100 ({CONTEST_BASELINE_MS_8XH100 / base['step_ms']:.2f}x)")
    print()
    print(f"{'preset':<22}{'eval method(s)':<34}{'tok/s/GPU':>12}{'proj s on ' + target.label:>18}")
    for name, row in bench["rows"].items():
        for method, e in row["eval"].items():
            print(f"{name:<22}{method:<34}{e['tokens_per_s_per_gpu']:>12,.0f}"
                  f"{bench['plans'][name]['eval_seconds'][method]:>18.1f}")
    return 0


def parse_variant(text: str) -> tuple[str, list[str]]:
    """`NAME=KEY=VALUE,KEY=VALUE` -> (NAME, [KEY=VALUE, ...]); a comma inside a value is not supported."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        sys.exit(f"gpu_throughput: --variant {text!r}: expected NAME=KEY=VALUE[,KEY=VALUE...]")
    return name, rest.split(",")


if __name__ == "__main__":
    raise SystemExit(main())
