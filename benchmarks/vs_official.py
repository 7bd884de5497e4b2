"""pgolf's `cpu-mini` against the contest's own `train_gpt.py` at the same shape, on the same shards,
for the same wallclock, one after the other on this machine.

    python benchmarks/vs_official.py --official DIR --data SHARDS [--budgets 300,600,900] [--json]

DIR holds the contest's `train_gpt.py` and the `cpu_patch.py` that writes a CPU-runnable copy of it
(`--official` or the environment variable PGOLF_OFFICIAL; nothing of it is copied into pgolf).
SHARDS: the dev corpus built with the contest's SP-1024 tokenizer and `--val-fraction 0.1`
(`pgolf data build CORPUS --tokenizer fineweb_1024_bpe.model --val-fraction 0.1 --out SHARDS`).

For each budget it runs the official script (cpu-mini's shape through its environment variables:
4 layers, width 256, 4/2 heads, seq 512, 16,384 tokens a step; its own schedule) and then
`pgolf train` + `pack` + `eval` of `cpu-mini` (and of any `--presets`, e.g. a sweep's
best.toml), and prints a table: steps, s/step, tokens/s, round-trip val_bpb (both int8 +
zlib, both on the whole validation split), and the ratios. `--faithfulness` first runs both for
ten steps with the same schedule and prints their train losses side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import single_process, train_losses

OFFICIAL_ENV = "PGOLF_OFFICIAL"
# cpu-mini's shape and batch in the official script's environment variables.
SHAPE = {"VOCAB_SIZE": "1024", "NUM_LAYERS": "4", "MODEL_DIM": "256", "NUM_HEADS": "4", "NUM_KV_HEADS": "2",
         "MLP_MULT": "2", "TRAIN_SEQ_LEN": "512", "TRAIN_BATCH_TOKENS": "16384", "VAL_BATCH_SIZE": "32768",
         "VAL_LOSS_EVERY": "0", "TRAIN_LOG_EVERY": "10", "WARMUP_STEPS": "2", "ITERATIONS": "20000"}
# The official schedule at this scale (what its CPU runs used): warmdown 200 steps, momentum warm-up 500.
OFFICIAL_SCHEDULE = {"WARMDOWN_ITERS": "200"}
# pgolf with the official script's schedule, learning rates and batch (cpu-mini's own are tuned).
PGOLF_WITH_OFFICIAL_SCHEDULE = ["train.warmdown_iters=200", "train.warmdown_fraction=0.0",
                                "train.muon_momentum_warmup_steps=500", "train.muon_momentum_warmup_fraction=0.0",
                                "train.matrix_lr=0.04", "train.scalar_lr=0.04", "train.tied_embed_lr=0.05",
                                "train.tokens_per_step=16384"]


def patched_official(official: Path, work: Path) -> Path:
    script = work / "train_gpt_cpu.py"
    proc = subprocess.run([sys.executable, str(official / "cpu_patch.py"), str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"vs_official: cpu_patch.py failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return script


def run_official(script: Path, data: Path, tokenizer: Path, seconds: float, work: Path, extra: dict | None = None) -> dict:
    env = single_process({**os.environ, **SHAPE, **OFFICIAL_SCHEDULE, **(extra or {}), "DATA_PATH": str(data),
                          "TOKENIZER_PATH": str(tokenizer), "MAX_WALLCLOCK_SECONDS": str(seconds),
                          "RUN_ID": f"official_{int(seconds)}"})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    text = proc.stdout + proc.stderr
    final = re.search(r"final_int8_zlib_roundtrip_exact val_loss:([\d.]+) val_bpb:([\d.]+)", text)
    if proc.returncode != 0 or not final:
        sys.exit(f"vs_official: the official script failed (rc {proc.returncode}): {text[-1500:]}")
    steps = [(int(m[0]), float(m[1]), float(m[2])) for m in
             re.findall(r"step:(\d+)/\d+ train_loss:([\d.]+) train_time:(\d+)ms", text)]
    stop = re.findall(r"step:(\d+)/\d+ val_loss:[\d.]+ val_bpb:[\d.]+ train_time:(\d+)ms", text)
    n, ms = (int(stop[-1][0]), float(stop[-1][1])) if stop else (steps[-1][0], steps[-1][2])
    return {"trainer": "official train_gpt.py", "steps": n, "train_seconds": ms / 1000,
            "tokens_per_step": int(env["TRAIN_BATCH_TOKENS"]),
            "roundtrip_bpb": float(final[2]), "roundtrip_loss": float(final[1]),
            "train_losses": [loss for _, loss, _ in steps], "wall_seconds": wall}


def run_pgolf(preset: str, overrides: list[str], data: Path, tokenizer: Path, seconds: float, work: Path,
              label: str) -> dict:
    from pgolf.artifact.pack import pack_run
    from pgolf.evaluate.artifact_eval import evaluate_artifact
    from pgolf.job.preset import load_preset
    from pgolf.runtime import init_runtime
    from pgolf.train.loop import train

    runtime = init_runtime("cpu")
    p = load_preset(preset, overrides + [f"train.max_wallclock_seconds={seconds}", "train.train_log_every=10"])
    run = work / f"pgolf_{label.replace('/', '_')}_{int(seconds)}"
    t0 = time.perf_counter()
    summary = train(p, data, run, runtime, tokenizer=tokenizer, progress=False)
    packed = pack_run(run, allow_over_budget=True)
    ev = evaluate_artifact(packed["artifact"], data, runtime, tokenizer=tokenizer)
    losses = train_losses(run)
    return {"trainer": f"pgolf {label}", "steps": summary["steps"], "train_seconds": summary["train_time_ms"] / 1000,
            "tokens_per_step": p.train.tokens_per_step,
            "roundtrip_bpb": ev["val_bpb"], "roundtrip_loss": ev["val_loss"], "train_losses": losses,
            "wall_seconds": time.perf_counter() - t0}


def label(preset: str) -> str:
    """A short name: a preset file's parent folder and stem (e.g. a sweep's `a/best`), else the name."""
    p = Path(preset)
    return f"{p.parent.name}/{p.stem}" if p.suffix == ".toml" else preset


def faithfulness(script: Path, data: Path, tokenizer: Path, work: Path) -> dict:
    """Ten steps of each with the same schedule (no wallclock cap), train loss logged every step."""
    ten = {"ITERATIONS": "10", "TRAIN_LOG_EVERY": "1", "WARMUP_STEPS": "0"}
    official = run_official(script, data, tokenizer, 0, work, ten)
    ours = run_pgolf("cpu-mini", PGOLF_WITH_OFFICIAL_SCHEDULE + ["train.iterations=10", "train.train_log_every=1",
                                                                 "train.warmup_steps=0", "train.compile=\"off\""],
                     data, tokenizer, 0, work, "ten")
    a, b = official["train_losses"][:10], ours["train_losses"][:10]
    return {"official": a, "pgolf": b, "max_abs_diff": max(abs(x - y) for x, y in zip(a, b)),
            # "to 2 decimals" as a tolerance: rounding both would split 6.2458 and 6.2449 at a boundary
            "match_2_decimals": all(abs(x - y) < 0.005 for x, y in zip(a, b))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, default=os.environ.get(OFFICIAL_ENV),
                    help=f"folder with the contest's train_gpt.py and cpu_patch.py (default ${OFFICIAL_ENV})")
    ap.add_argument("--data", type=Path, required=True, help="SP-1024 shards of the dev corpus")
    ap.add_argument("--tokenizer", type=Path, help="default DATA/tokenizer.model")
    ap.add_argument("--budgets", default="600", help="comma-separated training seconds (default 600; \"\" = none)")
    ap.add_argument("--presets", default="cpu-mini",
                    help="comma-separated pgolf presets to race, e.g. cpu-mini,sweeps/a/best.toml (default cpu-mini)")
    ap.add_argument("--also-official-schedule", action="store_true",
                    help="also run the pgolf preset with the official schedule (warmdown 200, momentum warm-up 500)")
    ap.add_argument("--faithfulness", action="store_true", help="first compare ten steps' train losses")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", type=Path, help="also write the results as JSON here after every budget "
                                              "(a long comparison keeps what it finished)")
    args = ap.parse_args()
    if not args.official or not (Path(args.official) / "train_gpt.py").is_file():
        sys.exit(f"vs_official: pass --official DIR (or set {OFFICIAL_ENV}) holding train_gpt.py and cpu_patch.py")
    tokenizer = args.tokenizer or args.data / "tokenizer.model"
    out: dict = {"budgets": {}}
    with tempfile.TemporaryDirectory(prefix="pgolf-vs-official-") as tmp:
        work = Path(tmp)
        script = patched_official(Path(args.official), work)
        if args.faithfulness:
            out["faithfulness"] = faithfulness(script, args.data, tokenizer, work)
        for seconds in [float(b) for b in args.budgets.split(",") if b]:
            presets = args.presets.split(",")
            rows = [run_official(script, args.data, tokenizer, seconds, work)]
            rows += [run_pgolf(p, [], args.data, tokenizer, seconds, work, label(p)) for p in presets]
            if args.also_official_schedule:
                rows.append(run_pgolf(presets[0], PGOLF_WITH_OFFICIAL_SCHEDULE, args.data, tokenizer, seconds, work,
                                      f"{label(presets[0])}+official-schedule"))
            base = rows[0]
            for r in rows:
                r["s_per_step"] = r["train_seconds"] / max(r["steps"], 1)
                r["tokens_per_second"] = r["steps"] * r["tokens_per_step"] / max(r["train_seconds"], 1e-9)
                r["bpb_vs_official"] = r["roundtrip_bpb"] / base["roundtrip_bpb"]
                r["speed_vs_official"] = r["tokens_per_second"] / base["tokens_per_second"]
                r.pop("train_losses")
            out["budgets"][str(int(seconds))] = rows
            print(f"vs_official: {int(seconds)} s done: " + "; ".join(
                f"{r['trainer']} {r['roundtrip_bpb']:.4f} ({r['steps']} steps)" for r in rows), file=sys.stderr, flush=True)
            if args.save:
                args.save.write_text(json.dumps(out, indent=1) + "\n")
    if args.json:
        print(json.dumps(out, indent=1))
        return
    if "faithfulness" in out:
        f = out["faithfulness"]
        print("first ten train losses (same schedule): official " + " ".join(f"{x:.4f}" for x in f["official"]))
        print("                                        pgolf    " + " ".join(f"{x:.4f}" for x in f["pgolf"]))
        print(f"max |diff| {f['max_abs_diff']:.4f}; within 0.005 (2 decimals): {f['match_2_decimals']}\n")
    print(f"{'budget':>6}  {'trainer':<40} {'steps':>5} {'s/step':>7} {'tok/s':>7} {'speed':>6} {'roundtrip bpb':>13} {'ratio':>6}")
    for seconds, rows in out["budgets"].items():
        for r in rows:
            print(f"{seconds:>6}  {r['trainer']:<40} {r['steps']:>5} {r['s_per_step']:>7.3f} {r['tokens_per_second']:>7.0f} "
                  f"{r['speed_vs_official']:>6.3f} {r['roundtrip_bpb']:>13.4f} {r['bpb_vs_official']:>6.4f}")


if __name__ == "__main__":
    main()
