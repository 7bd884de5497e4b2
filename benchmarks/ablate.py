"""Ablation at cpu-mini scale: the naive baseline, each add-on alone on top of it, and each seed
system's full stack (its `-mini` preset), all with the same wallclock budget.

Data: the dev corpus (`--dev-data DIR` or PGOLF_DEV_DATA; see devdata.py) tokenized with the contest's SP-1024 model,
validation = the last 10% of each file's documents (`--val-fraction 0.1`), built once into
`--cache`. Every row scores its final weights (after EMA where the row uses it, before any
quantization) on the same first `--val-tokens` validation tokens, so rows compare like for like.

    python benchmarks/ablate.py                       # full budget: 180 s of training per row
    python benchmarks/ablate.py --budget-seconds 60   # a quick look
    python benchmarks/ablate.py --rows baseline,+xsa --json
    python benchmarks/ablate.py --frontier            # issue 18: the 1.0611 record's components and stacks
    python benchmarks/ablate.py --frontier --tokens 983040   # equal tokens instead of equal wallclock

Equal wallclock charges each change its compute cost (what the contest's cap does); equal tokens
(`--tokens N`: each row trains N // its own tokens-per-step steps, the schedule's fractions taken
over steps) shows what a change does per token seen, and is deterministic per seed whatever else
runs on the machine.

Rows are appended to `--results` (JSON lines) as they finish; a re-run skips rows already there
with the same budget, so an interrupted ablation resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from devdata import ENV, dev_data_dir, dev_tokenizer
from pgolf.job.preset import load_preset
from pgolf.data.build import build_shards
from pgolf.model.gpt import GPT, count_parameters
from pgolf.runtime import init_runtime
from pgolf.train.loop import train

# name -> (preset, overrides); add-on rows are cpu-mini plus one change.
ADDON_ROWS: dict[str, list[str]] = {
    "+leaky_relu2": ['model.activation="leaky_relu2"'],
    "+mlp3x": ["model.mlp_mult=3.0"],
    "+partial_rope": ["model.addons.partial_rope.dims=16"],
    "+ln_scale": ["model.addons.ln_scale={}"],
    "+xsa_last2": ["model.addons.xsa.last=2"],
    "+xsa_all": ["model.addons.xsa.last=0"],
    "+value_residual": ['model.addons.value_residual.mode="sigmoid"'],
    "+value_embed": ["model.addons.value_embed.dim=64"],
    "+bigram_hash": ["model.addons.bigram_hash.buckets=2048", "model.addons.bigram_hash.dim=64"],
    "+smear_gate": ["model.addons.smear_gate={}"],
    "+dtg": ["model.addons.dtg={}"],
    "+orthogonal_init": ["model.addons.orthogonal_init={}"],
    "+ema": ['train.averaging="ema"', "train.ema_decay=0.75"],
    "+muon_wd": ["train.muon_weight_decay=0.04", "train.adam_weight_decay=0.04"],
    "+qk_gain_4": ["model.qk_gain_init=4.0"],
}
# The 1.0611 record's (PR #1855) new components, each alone on cpu-mini at the record's settings
# re-placed for 4 layers as record-1855-mini places them (issue 18).
FRONTIER_ROWS: dict[str, list[str]] = {
    "+depth_recurrence": ["model.addons.depth_recurrence.start=1", "model.addons.depth_recurrence.end=1",
                          "model.addons.depth_recurrence.loops=2", "model.addons.depth_recurrence.enable_at=0.35"],
    "+parallel_lanes": ["model.addons.parallel_lanes.start=3"],
    "+gated_unet_skips": ["model.addons.unet_skips.gated=true"],
    "+sparse_attn_gate": ["model.addons.sparse_attn_gate.window=12", "model.addons.sparse_attn_gate.scale=0.5"],
    "+smear_gate_v3": ["model.addons.smear_gate_v3.window=12", "model.addons.smear_gate_v3.bos_id=1"],
    "+doc_isolation": ["model.addons.doc_isolation.bos_id=1"],
    "+mlp4x": ["model.mlp_mult=4.0"],
    "+muoneq_r": ["train.muon_row_normalize=true"],
    "+polar_express": ['train.muon_coefficients="polar-express"'],
    "+momentum_0.97": ["train.muon_momentum=0.97", "train.muon_momentum_warmup_start=0.92"],
    "+min_lr_0.1": ["train.min_lr=0.1"],
    "+embed_wd": ["train.embed_weight_decay=0.085"],
}
STACK_ROWS = ["record-549-mini", "record-1855-mini", "seed-1150-ttt-slot-mini", "seed-1207-hydra-mini", "seed-1488-slot24-mini",
              "seed-731-hedge-mini", "seed-700-hedge-crownq-mini"]


def all_rows() -> list[tuple[str, str, list[str]]]:
    rows = [("baseline", "cpu-mini", [])]
    rows += [(name.removesuffix("-mini") + " (stack)", name, []) for name in STACK_ROWS]
    rows += [(name, "cpu-mini", over) for name, over in {**ADDON_ROWS, **FRONTIER_ROWS}.items()]
    return rows


def ensure_data(cache: Path, tokenizer: Path, dev_data: Path | None) -> Path:
    if (cache / "manifest.json").is_file():
        return cache
    build_shards([dev_data_dir(dev_data) / "corpus"], cache, tokenizer=tokenizer, val_fraction=0.1)
    return cache


def budget_overrides(preset_name: str, overrides: list[str], budget: float, tokens: int) -> list[str]:
    """Equal wallclock (`budget` seconds) or, with `tokens` > 0, equal tokens: the row's own batch
    decides its step count."""
    if tokens > 0:
        per_step = load_preset(preset_name, overrides).train.tokens_per_step
        return [f"train.iterations={max(tokens // per_step, 1)}", "train.max_wallclock_seconds=0"]
    return [f"train.max_wallclock_seconds={budget}"]


def run_row(preset_name: str, overrides: list[str], data: Path, tokenizer: Path, budget: float,
            val_tokens: int, compile_mode: str, runtime, tokens: int = 0) -> dict:
    preset = load_preset(preset_name, overrides + budget_overrides(preset_name, overrides, budget, tokens) + [
        f"train.val_tokens_limit={val_tokens}",
        f'train.compile="{compile_mode}"', f"train.warmup_steps={2 if compile_mode == 'on' else 0}",
        "train.val_every=0",
    ])
    with torch.device("meta"):
        params = count_parameters(GPT(preset.model))
    with tempfile.TemporaryDirectory() as run_dir:
        s = train(preset, data, run_dir, runtime, tokenizer=tokenizer, progress=False)
    return {"preset": preset_name, "overrides": overrides, "params": params, "steps": s["steps"],
            "tokens_per_s": s["tokens_seen"] / (s["train_time_ms"] / 1000), "val_loss": s["val_loss"],
            "val_bpb": s["val_bpb"], "budget_seconds": 0 if tokens else budget, "budget_tokens": tokens,
            "val_tokens": val_tokens, "compile": compile_mode, "train_seconds": s["train_time_ms"] / 1000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-seconds", type=float, default=180.0, help="training clock per row (default 180)")
    ap.add_argument("--tokens", type=int, default=0,
                    help="equal tokens instead of equal wallclock: each row trains this many tokens")
    ap.add_argument("--val-tokens", type=int, default=262_144, help="validation tokens scored per row")
    ap.add_argument("--data", type=Path, help="shard directory (default: build from the dev corpus)")
    ap.add_argument("--dev-data", type=Path, help=f"dev corpus directory (default ${ENV})")
    ap.add_argument("--tokenizer", type=Path, help="SentencePiece model (default: the dev corpus's SP-1024)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pgolf-ablate-sp1024")
    ap.add_argument("--results", type=Path, default=Path("ablate-results.jsonl"))
    ap.add_argument("--rows", help="comma-separated row names (default all)")
    ap.add_argument("--frontier", action="store_true",
                    help="the baseline, the record-549 and record-1855 stacks and each 1.0611 component alone")
    ap.add_argument("--compile", default="on", choices=["on", "off"])
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (default: all cores). With 1 (and `taskset -c N`), rows keep a "
                         "core to themselves while other work runs on the rest")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.tokenizer = args.tokenizer or dev_tokenizer(args.dev_data)
    data = args.data or ensure_data(args.cache, args.tokenizer, args.dev_data)
    runtime = init_runtime("auto")
    if args.threads:
        torch.set_num_threads(args.threads)
    done: dict[str, dict] = {}
    if args.results.is_file():
        for line in args.results.read_text().splitlines():
            r = json.loads(line)
            same_budget = (r.get("budget_tokens", 0) == args.tokens if args.tokens
                           else r["budget_seconds"] == args.budget_seconds and not r.get("budget_tokens"))
            if same_budget and r["val_tokens"] == args.val_tokens:
                done[r["row"]] = r
    wanted = set(args.rows.split(",")) if args.rows else None
    if args.frontier:
        wanted = (wanted or set()) | {"baseline", "record-549 (stack)", "record-1855 (stack)", *FRONTIER_ROWS}
    for name, preset_name, overrides in all_rows():
        if (wanted and name not in wanted) or name in done:
            continue
        print(f"ablate: {name} ...", file=sys.stderr, flush=True)
        r = {"row": name, **run_row(preset_name, overrides, data, args.tokenizer, args.budget_seconds,
                                    args.val_tokens, args.compile, runtime, args.tokens)}
        done[name] = r
        with open(args.results, "a") as f:
            f.write(json.dumps(r) + "\n")
    rows = [done[n] for n, _, _ in all_rows() if n in done and (not wanted or n in wanted)]
    base = done.get("baseline")
    for r in rows:
        r["delta_bpb"] = r["val_bpb"] - base["val_bpb"] if base else None
        r["throughput_ratio"] = r["tokens_per_s"] / base["tokens_per_s"] if base else None
    if args.json:
        print(json.dumps({"rows": rows}, sort_keys=True))
        return 0
    budget = f"{args.tokens:,} tokens" if args.tokens else f"{args.budget_seconds:.0f} s"
    print(f"cpu-mini scale, {torch.get_num_threads()} thread(s), {budget} of training per row, val = first {args.val_tokens:,} "
          f"tokens of the dev corpus's last-10% split (SP-1024), pre-quantization, compile {args.compile}")
    head = f"{'row':<30}{'params':>11}{'steps':>7}{'train s':>8}{'tokens/s':>10}{'x base':>8}{'val_bpb':>9}{'Δ bpb':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        d = f"{r['delta_bpb']:+.4f}" if r["delta_bpb"] is not None else "-"
        x = f"{r['throughput_ratio']:.2f}" if r["throughput_ratio"] is not None else "-"
        secs = r.get("train_seconds", r["budget_seconds"])
        print(f"{r['row']:<30}{r['params']:>11,}{r['steps']:>7}{secs:>8.0f}{r['tokens_per_s']:>10,.0f}{x:>8}"
              f"{r['val_bpb']:>9.4f}{d:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
