"""Quantization benchmark on cpu-mini models trained on the dev corpus.

For each training variant (plain; late QAT int6; late QAT + CROWN-Q) and each quantizer
(int8-rtn = the baseline's exporter, rtn-int8, rtn-int6, gptq-lite-int6, gptq-int6 calibrated on
training shards), it reports the quantization gap (bpb of the round-tripped artifact − bpb of the
float weights, on the same first `--val-tokens` validation tokens), the artifact bytes under each
compressor, the bytes per parameter of the block matrices alone after the best compressor, and
the GPTQ seconds. `--time-11l` also times calibration + GPTQ on the full 11-layer record-549
preset (random init, CPU).

    python benchmarks/quant.py --budget-seconds 180 [--time-11l] [--json]
    python benchmarks/quant.py --steps 220 --variants plain --train-only --threads 1   # one variant

`--steps N` trains a fixed number of steps (warmdown over the last 40%) instead of a wallclock
budget, so the weights do not depend on how busy the machine is and variants can train side by
side; 220 steps is what a quiet 10-minute cpu-mini run reaches on this 2-core machine.

Data: the dev corpus (`--dev-data DIR` or PGOLF_DEV_DATA; see devdata.py) with the contest SP-1024 tokenizer, `--val-fraction 0.1`.
Trained runs are cached under `--cache` so quantizers can be re-measured without retraining.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from devdata import ENV, dev_data_dir, dev_tokenizer
from pgolf.artifact.format import Artifact, encode_artifact
from pgolf.artifact.pack import pack_run
from pgolf.config import PackConfig
from pgolf.job.preset import load_preset
from pgolf.data.build import build_shards
from pgolf.evaluate.artifact_eval import evaluate_artifact
from pgolf.data.scoring import evaluate_standard
from pgolf.artifact.load import model_from_state
from pgolf.quant.calibration import calibrate, load_hessians, train_calibration_batches
from pgolf.quant.compress import COMPRESSORS
from pgolf.quant.encoding import decode_state_dict
from pgolf.quant.layout import LAYOUTS, relayout
from pgolf.quant.registry import get_quantizer
from pgolf.train.checkpoint import load_checkpoint
from pgolf.runtime import init_runtime
from pgolf.data.validation import load_eval_inputs
from pgolf.train.loop import train

VARIANTS = {
    "plain": [],
    "late-qat-int6": ["train.qat_bits=6", "train.qat_start_lr_scale=0.15"],
    "late-qat-int6+crown-q": ["train.qat_bits=6", "train.qat_start_lr_scale=0.15",
                              "train.crown_q_lambda=0.01", "train.crown_q_qmax=31"],
}
QUANTIZERS = ["int8-rtn", "rtn-int8", "rtn-int6", "gptq-lite-int6", "gptq-int6"]


def block_matrix_bytes_per_param(run_dir: Path, quant: str, hessians) -> tuple[dict[str, float], float]:
    """Bytes per parameter of the block matrices alone, per compressor/layout, and the order-0
    entropy of their integers in bytes per parameter (no coder that ignores context goes lower)."""
    weights, _ = load_checkpoint(run_dir)
    blocks = {k: v for k, v in weights.items() if k.startswith("blocks.") and v.ndim == 2 and v.numel() > 65_536}
    roles = {name: "matrix" for name in blocks}  # block matrices only, all role `matrix`
    tensors = get_quantizer(quant)(blocks, PackConfig(), roles, hessians=hessians)
    n = sum(v.numel() for v in blocks.values())
    sizes = {f"{c}/{layout}": len(encode_artifact(Artifact({}, quant, relayout(tensors, layout), compressor=c))) / n
             for c in COMPRESSORS.names() for layout in LAYOUTS}
    integers = np.concatenate([t.parts["q"].reshape(-1) for t in relayout(tensors, "bytes")])
    freq = np.bincount(integers.astype(np.int64) + 128) / integers.size
    freq = freq[freq > 0]
    return sizes, float(-(freq * np.log2(freq)).sum() / 8)


def output_error(weights: dict, quant: str, hessians) -> float:
    """GPTQ's objective summed over the calibrated matrices, relative to the weights' own energy:
    Σ tr(ΔW H ΔWᵀ) / Σ tr(W H Wᵀ), H the layer-input second moments from training data."""
    calibrated = {k: weights[k] for k in hessians}
    roles = {name: "matrix" for name in calibrated}  # GPTQ calibrates block matrices only
    tensors = get_quantizer(quant)(calibrated, PackConfig(), roles, hessians=hessians if get_quantizer(quant).needs_hessians else None)
    decoded = decode_state_dict(tensors)
    err = energy = 0.0
    for name, w in calibrated.items():
        h = hessians[name].hessian
        w64 = w.double().reshape(w.shape[0], -1)
        delta = decoded[name].double().reshape_as(w64) - w64
        err += float(torch.einsum("ij,jk,ik->", delta, h, delta))
        energy += float(torch.einsum("ij,jk,ik->", w64, h, w64))
    return err / energy


def packed_bpp(row: dict) -> float:
    return min(v for k, v in row["block_bytes_per_param"].items() if k.endswith("/packed"))


def budget_tag(args: argparse.Namespace) -> str:
    return f"{args.steps}steps" if args.steps else f"{int(args.budget_seconds)}s"


def budget_overrides(args: argparse.Namespace) -> list[str]:
    if args.steps:
        return [f"train.iterations={args.steps}", "train.max_wallclock_seconds=0", "train.warmdown_fraction=0",
                f"train.warmdown_iters={round(0.4 * args.steps)}"]
    return [f"train.max_wallclock_seconds={args.budget_seconds}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-seconds", type=float, default=180.0)
    ap.add_argument("--val-tokens", type=int, default=262_144)
    ap.add_argument("--calibration-sequences", type=int, default=64)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--quantizers", default=",".join(QUANTIZERS), help="comma-separated registered quantizers")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--tokenizer", type=Path, help="SentencePiece model (default: the dev corpus's SP-1024)")
    ap.add_argument("--dev-data", type=Path, help=f"dev corpus directory (default ${ENV})")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pgolf-quant-bench")
    ap.add_argument("--steps", type=int, default=0, help="train this many steps instead of --budget-seconds")
    ap.add_argument("--train-only", action="store_true", help="train (or find) the runs, measure nothing")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    ap.add_argument("--time-11l", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime = init_runtime("cpu")
    args.tokenizer = args.tokenizer or (args.data / "tokenizer.model" if args.data else dev_tokenizer(args.dev_data))
    data = args.data or args.cache / "data"
    if args.data is None and not (data / "manifest.json").is_file():
        build_shards([dev_data_dir(args.dev_data) / "corpus"], data, tokenizer=args.tokenizer, val_fraction=0.1)
    val, tables, _ = load_eval_inputs(data, args.tokenizer, 1024, runtime.device)
    rows = []
    for variant in args.variants.split(","):
        run = args.cache / f"run-{variant}-{budget_tag(args)}"
        if not (run / "state.json").is_file():
            print(f"quant: training {variant} ...", file=sys.stderr, flush=True)
            train(load_preset("cpu-mini", VARIANTS[variant] + budget_overrides(args)),
                  data, run, runtime, tokenizer=args.tokenizer, progress=False)
        if args.train_only:
            continue
        weights, state = load_checkpoint(run)
        model = model_from_state(state["preset"], weights)
        float_bpb = evaluate_standard(model, val, tables, 512, 32768, runtime, limit=args.val_tokens).bpb
        batches, prov = train_calibration_batches(data, args.calibration_sequences, 512)
        prov = calibrate(model, batches, prov, run)
        hessians, _ = load_hessians(run)
        for quant in args.quantizers.split(","):
            t0 = time.perf_counter()  # the quantizer alone (GPTQ's solve), then the whole pack
            get_quantizer(quant)(weights, PackConfig(), model.roles, hessians=hessians if get_quantizer(quant).needs_hessians else None)
            quant_seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            packed = pack_run(run, out=run / f"{quant}.pgolf", quant=quant, compressor="best", allow_over_budget=True)
            seconds = time.perf_counter() - t0
            ev = evaluate_artifact(packed["artifact"], data, runtime, tokenizer=args.tokenizer, limit=args.val_tokens)
            rel_err = output_error(weights, quant, hessians)
            bpp, entropy = block_matrix_bytes_per_param(run, quant, hessians if get_quantizer(quant).needs_hessians else None)
            rows.append({"variant": variant, "quant": quant, "float_bpb": float_bpb, "bpb": ev["val_bpb"],
                         "gap": ev["val_bpb"] - float_bpb, "sizes": packed["compressed_sizes"],
                         "best_compressor": packed["compressor"], "best_layout": packed["layout"],
                         "layout_sizes": packed["layout_sizes"], "model_bytes": packed["model_bytes"],
                         "block_bytes_per_param": bpp, "block_entropy_bytes_per_param": entropy,
                         "pack_seconds": seconds, "quantize_seconds": quant_seconds,
                         "output_error": rel_err,
                         "calibration_seconds": prov["seconds"] if get_quantizer(quant).needs_hessians else 0.0})
    if args.train_only:
        return 0
    result: dict = {"rows": rows, "budget": budget_tag(args), "val_tokens": args.val_tokens}
    if args.time_11l:
        preset = load_preset("record-549")
        from pgolf.model.gpt import GPT

        model = GPT(preset.model)
        with tempfile.TemporaryDirectory() as tmp:
            batches, prov = train_calibration_batches(data, 8, 2048)
            prov = calibrate(model, batches, prov, tmp)
            hessians, _ = load_hessians(tmp)
            t0 = time.perf_counter()
            get_quantizer("gptq-int6")({k: v for k, v in model.state_dict().items()}, PackConfig(), model.roles,
                                        hessians=hessians)
            result["record_549_cpu"] = {"hessian_seconds": prov["seconds"], "gptq_seconds": time.perf_counter() - t0,
                                        "matrices": len(hessians), "calibration_sequences": 8}
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    print(f"cpu-mini, {budget_tag(args)} of training per variant, val = first {args.val_tokens:,} tokens "
          f"(dev corpus last-10% split, SP-1024); gap = roundtrip bpb − float bpb")
    comps = COMPRESSORS.names()
    head = (f"{'variant':<24}{'quantizer':<16}{'float':>8}{'gap':>9}{'out err':>9}" + "".join(f"{c:>11}" for c in comps)
            + f"{'blk packed':>11}{'blk best':>10}{'blk H0':>8}{'layout':>9}{'quant s':>8}{'pack s':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        sizes = "".join(f"{r['sizes'].get(c, 0):>11,}" for c in comps)
        print(f"{r['variant']:<24}{r['quant']:<16}{r['float_bpb']:>8.4f}{r['gap']:>+9.4f}{r['output_error']:>9.2e}{sizes}"
              f"{packed_bpp(r):>11.3f}{min(r['block_bytes_per_param'].values()):>10.3f}"
              f"{r['block_entropy_bytes_per_param']:>8.3f}{r['best_layout']:>9}"
              f"{r['quantize_seconds']:>8.1f}{r['pack_seconds']:>8.1f}")
    print("sizes: whole artifact per compressor (its best layout); blk: block matrices alone, bytes per parameter "
          "after the best compressor, bit-packed vs the best layout; blk H0: order-0 entropy of their integers; out err: Σ tr(ΔW H ΔWᵀ) / Σ tr(W H Wᵀ) over the calibrated matrices")
    for variant in dict.fromkeys(r["variant"] for r in rows):
        calib = max(r["calibration_seconds"] for r in rows if r["variant"] == variant)
        print(f"{variant}: GPTQ Hessians from {args.calibration_sequences} training sequences in {calib:.1f} s")
    if "record_549_cpu" in result:
        t = result["record_549_cpu"]
        print(f"record-549 (11L, 26.9M params) on CPU: Hessians {t['hessian_seconds']:.1f} s for "
              f"{t['calibration_sequences']} x 2048 tokens, GPTQ solve {t['gptq_seconds']:.1f} s for {t['matrices']} matrices")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
