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
    python benchmarks/ablate.py --frontier 2135       # issue 33: the final row's additions on record-1855-mini

Equal wallclock charges each change its compute cost (what the contest's cap does); equal tokens
(`--tokens N`: each row trains N // its own tokens-per-step steps, the schedule's fractions taken
over steps) shows what a change does per token seen, and is deterministic per seed whatever else
runs on the machine.

Rows are appended to `--results` (JSON lines) as they finish; a re-run skips rows already there
with the same budget, so an interrupted ablation resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
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
# The final row's (PR #2135) additions over record-1855 as its code has them, each alone on
# record-1855-mini as record-2135-mini sets it (issue 33), by the stage it changes: "train" rows
# retrain, "pack" rows repack the base's own run, "eval" rows re-score the base's own artifact.
# (#2135's matrix lr 0.028 has no row: the minis keep their own schedule's.)
FINAL_BASE, FINAL_STACK = "record-1855-mini", "record-2135-mini"
FINAL_ROWS: dict[str, tuple[str, list[str]]] = {
    "+asym_logit": ("train", ["model.addons.asym_logit.init=0.0"]),
    "+smear_without_bos_mask": ("train", ["model.addons.smear_gate_v3.bos_id=-1"]),
    "+calibration_x2": ("train", ["train.gptq_calibration_sequences=64"]),
    "+lqer_group_32": ("pack", ["pack.lqer_group=32"]),
    "+fp16_gates": ("pack", ["pack.gate_bits=0"]),
    "+eval_context_1.25x": ("eval", ["eval.seq_len=640", "evaluation.doc_sliding.seq_len=640"]),
    "+one_phase": ("eval", ["evaluation.phased.phases=1"]),
    "+lora_without_k": ("eval", ['evaluation.lora_ttt.targets=["q", "v", "o", "mlp", "head"]',
                                 "evaluation.lora_ttt.lr=0.0024", "evaluation.lora_ttt.weight_decay=2.0"]),
    "+ngram_tilt": ("eval", ['evaluation.methods=["doc-sliding", "lora-ttt", "phased", "ngram-tilt"]']),
}
# Pieces of #2135's lineage its descriptions name but its code does not run (each alone, the same way).
LINEAGE_ROWS: dict[str, tuple[str, list[str]]] = {
    "+gated_xsa (#2118)": ("train", ["model.addons.xsa.gated=true", "model.addons.xsa.gate_init=0.0"]),
    "+qk_gain_5.25 (#1953)": ("train", ["model.qk_gain_init=5.25"]),
    "+growing_context (#2014)": ("train", ["train.seq_len=1024",
                                           "train.seq_len_schedule=[[0.0, 256], [0.1, 512], [0.7, 1024]]"]),
    "+awq_lite (#1908)": ("pack", ["pack.awq_top=1"]),
    "+lora_without_qv (#1953)": ("eval", ['evaluation.lora_ttt.targets=["k", "o", "mlp", "head"]',
                                          "evaluation.lora_ttt.lr=0.00225"]),
    "+short_chunks (#2014)": ("eval", ["evaluation.doc_sliding.short_chunks=[[256, 8], [2000, 24]]"]),
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


# Evaluation rows re-score the base's artifact with its whole pipeline on fewer tokens (LoRA TTT
# runs a backward pass per chunk), with the phase boundary brought inside them: the mini's 50
# prefix documents are ~90,000 tokens of the dev split.
PIPELINE_SETTINGS = ["evaluation.phased.prefix_docs=4"]


def run_pipeline_row(preset_name: str, overrides: list[str], data: Path, tokenizer: Path, budget: float,
                     tokens: int, val_tokens: int, compile_mode: str, runtime, work: Path,
                     pack_overrides: list[str] | None = None, eval_overrides: list[str] | None = None,
                     run_dir: Path | None = None, pipeline: bool = False) -> dict:
    """Train (unless `run_dir` holds the run already), pack, and score the artifact on the first
    `val_tokens` validation tokens: with the standard evaluation (the round trip of training and
    pack), or with `pipeline` the preset's own legal evaluation methods."""
    from pgolf.artifact.pack import pack_run
    from pgolf.evaluate.artifact_eval import evaluate_artifact

    preset = load_preset(preset_name, overrides + budget_overrides(preset_name, overrides, budget, tokens) + [
        f"train.val_tokens_limit={val_tokens}", f'train.compile="{compile_mode}"',
        f"train.warmup_steps={2 if compile_mode == 'on' else 0}", "train.val_every=0"])
    row: dict = {}
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(dir=work))
        s = train(preset, data, run_dir, runtime, tokenizer=tokenizer, progress=False)
        row = {"steps": s["steps"], "tokens_per_s": s["tokens_seen"] / (s["train_time_ms"] / 1000),
               "prequant_bpb": s["val_bpb"], "train_seconds": s["train_time_ms"] / 1000}
    key = hashlib.sha1(json.dumps(pack_overrides or []).encode()).hexdigest()[:10]
    artifact = run_dir / f"ablate-{key}.pgolf"  # one pack per run and pack settings, reused by its eval rows
    if not artifact.is_file():
        pack_run(run_dir, out=artifact, allow_over_budget=True, overrides=pack_overrides)
    over = (PIPELINE_SETTINGS if pipeline else []) + [o for o in (eval_overrides or [])
                                                      if not o.startswith("evaluation.methods=")]
    methods = next((json.loads(o.split("=", 1)[1]) for o in (eval_overrides or []) if o.startswith("evaluation.methods=")),
                   "preset" if pipeline else "standard")
    t0 = time.perf_counter()
    r = evaluate_artifact(artifact, data, runtime, tokenizer=tokenizer, limit=val_tokens, methods=methods,
                          overrides=over)
    with torch.device("meta"):
        params = count_parameters(GPT(preset.model))
    return {"preset": preset_name, "params": params, "val_bpb": r["val_bpb"], "methods": r["method"],
            "model_bytes": artifact.stat().st_size, "eval_seconds": time.perf_counter() - t0,
            "budget_seconds": 0 if tokens else budget, "budget_tokens": tokens, "val_tokens": val_tokens,
            "compile": compile_mode, "run_dir": str(run_dir), **row}


def final_ablation(args, data: Path, runtime, done: dict[str, dict]) -> list[dict]:
    """Issue 33 on record-1855-mini. Training and pack rows: the base at three seeds, each training
    or pack addition alone on seed 1337, the whole stack (record-2135-mini), scored by the standard
    evaluation after pack. Evaluation rows (`--pipeline-tokens`): the three bases' artifacts, each
    evaluation addition alone on seed 1337's and all of them together, and the stack, scored by the
    preset's own pipeline (doc-sliding, LoRA TTT, phased)."""
    work = Path(tempfile.mkdtemp(prefix="pgolf-ablate-final-"))
    rows = []

    def record(name: str, make) -> dict:
        if name not in done:
            print(f"ablate: {name} ...", file=sys.stderr, flush=True)
            done[name] = {"row": name, **make()}
            with open(args.results, "a") as f:
                f.write(json.dumps(done[name]) + "\n")
        rows.append(done[name])
        return done[name]

    common = dict(data=data, tokenizer=args.tokenizer, budget=args.budget_seconds, tokens=args.tokens,
                  val_tokens=args.val_tokens, compile_mode=args.compile, runtime=runtime, work=work)
    base_runs = {}
    for seed in SEEDS3:
        r = record(f"base seed {seed}", lambda seed=seed: run_pipeline_row(FINAL_BASE, [f"train.seed={seed}"], **common))
        base_runs[seed] = Path(r["run_dir"])
    stages = {}
    for name, (stage, over) in {**FINAL_ROWS, **LINEAGE_ROWS}.items():
        stages.setdefault(stage, []).append((name, over))
    for name, over in stages["train"]:
        record(name, lambda over=over: run_pipeline_row(FINAL_BASE, [f"train.seed={SEEDS3[0]}", *over], **common))
    for name, over in stages["pack"]:
        record(name, lambda over=over: run_pipeline_row(FINAL_BASE, [f"train.seed={SEEDS3[0]}"], run_dir=base_runs[SEEDS3[0]],
                                                        pack_overrides=over, **common))
    stack = record("record-2135 (stack)", lambda: run_pipeline_row(FINAL_STACK, [f"train.seed={SEEDS3[0]}"], **common))
    if args.pipeline_tokens <= 0:  # the training and pack rows only
        return rows
    piped = {**common, "val_tokens": args.pipeline_tokens, "pipeline": True}
    for seed in SEEDS3:
        record(f"pipeline: base seed {seed}", lambda seed=seed: run_pipeline_row(
            FINAL_BASE, [f"train.seed={seed}"], run_dir=base_runs[seed], **piped))
    every = [o for stage, over in FINAL_ROWS.values() if stage == "eval" for o in over]
    for name, over in stages["eval"]:
        record(f"pipeline: {name}", lambda over=over: run_pipeline_row(
            FINAL_BASE, [f"train.seed={SEEDS3[0]}"], run_dir=base_runs[SEEDS3[0]], eval_overrides=over, **piped))
    record("pipeline: all #2135 evaluation additions", lambda: run_pipeline_row(
        FINAL_BASE, [f"train.seed={SEEDS3[0]}"], run_dir=base_runs[SEEDS3[0]], eval_overrides=every, **piped))
    record("pipeline: record-2135 (stack)", lambda: run_pipeline_row(
        FINAL_STACK, [f"train.seed={SEEDS3[0]}"], run_dir=Path(stack["run_dir"]), **piped))
    return rows


SEEDS3 = (1337, 1338, 1339)


def _spread(values: list[float]) -> tuple[float, float, float]:
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
    return mean, sd, max(values) - min(values)


def print_final(rows: list[dict], args) -> None:
    budget = f"{args.tokens:,} tokens" if args.tokens else f"{args.budget_seconds:.0f} s"
    stages = {name: stage for name, (stage, _) in {**FINAL_ROWS, **LINEAGE_ROWS}.items()}
    for part, prefix in (("training and pack", ""), ("evaluation", "pipeline: ")):
        mine = [r for r in rows if r["row"].startswith("pipeline: ") == bool(prefix)]
        bases = [r["val_bpb"] for r in mine if r["row"].removeprefix(prefix).startswith("base seed")]
        if not mine or not bases:
            continue
        mean, sd, spread = _spread(bases)
        ref = next(r["val_bpb"] for r in mine if r["row"].removeprefix(prefix) == f"base seed {SEEDS3[0]}")
        print(f"\n{part} rows, record-1855-mini, {budget} of training per row; scored on the first "
              f"{mine[0]['val_tokens']:,} validation tokens (dev corpus, SP-1024) by "
              + ("the standard evaluation after pack" if not prefix else
                 f"the preset's pipeline ({', '.join(PIPELINE_SETTINGS)})"))
        print(f"base over 3 seeds: mean {mean:.4f}, sd {sd:.4f}, range {spread:.4f}; rows on seed {SEEDS3[0]}'s "
              f"run compare with its {ref:.4f} (Δ seed); a Δ inside the range is not an effect")
        head = f"{'row':<44}{'stage':>7}{'steps':>7}{'model B':>11}{'eval s':>8}{'val_bpb':>9}{'Δ seed':>9}"
        print(head)
        print("-" * len(head))
        for r in mine:
            name = r["row"].removeprefix(prefix)
            stage = stages.get(name, "all" if "stack" in name or "all" in name else "base")
            print(f"{r['row']:<44}{stage:>7}{r.get('steps', '-')!s:>7}{r['model_bytes']:>11,}"
                  f"{r['eval_seconds']:>8.0f}{r['val_bpb']:>9.4f}{r['val_bpb'] - ref:>+9.4f}")


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
    ap.add_argument("--frontier", nargs="?", const="1855", choices=["1855", "2135"],
                    help="1855 (default): the baseline, the record-549 and record-1855 stacks and each 1.0611 "
                         "component alone; 2135: record-1855-mini at three seeds, each addition of the final "
                         "row alone on it and the record-2135-mini stack, scored after pack and evaluation")
    ap.add_argument("--pipeline-tokens", type=int, default=16_384,
                    help="--frontier 2135: validation tokens of the evaluation rows (default 16,384; 0: no "
                         "evaluation rows)")
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
    if args.frontier == "2135":
        rows = final_ablation(args, data, runtime, done)
        if args.json:
            print(json.dumps({"rows": rows}, sort_keys=True))
        else:
            print_final(rows, args)
        return 0
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
