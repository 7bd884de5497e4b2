"""Every contest-scale preset through its whole pipeline, as a contest participant would try it.

    # dry runs (full-shape model, tiny token budget) of naive-baseline, record-549 and the seeds
    python benchmarks/contest_presets.py dry --out benchmarks/results/contest-dry-runs
    # each -mini preset trained for 600 s on your shards, then packed, scored, audited, exported
    python benchmarks/contest_presets.py minis --data DIR --tokenizer SP.model --budget-seconds 600 \
        --limit-val-tokens 131072 --out benchmarks/results/minis-600s

Each preset runs as its own `pgolf run ... --json` process; its JSON lands in `--out/<preset>.json`
and a re-run skips presets already there, so an interrupted sweep resumes. The table is printed
from those files (`--table-only` prints it without running anything).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CONTEST = ["naive-baseline", "record-549", "seed-1150-ttt-slot", "seed-1207-hydra", "seed-1488-slot24",
           "seed-731-hedge", "seed-700-hedge-crownq", "record-1855"]
MINIS = [f"{p}-mini" for p in CONTEST[1:]]


def run_one(preset: str, args: argparse.Namespace, out: Path) -> dict:
    target = out / f"{preset}.json"
    if target.is_file():
        print(f"{preset}: done already ({target})", file=sys.stderr)
        return json.loads(target.read_text())
    cmd = [sys.executable, "-m", "pgolf", "run", "--preset", preset, "--json", "--out", str(out / preset)]
    if args.data:
        cmd += ["--data", str(args.data)] + (["--tokenizer", str(args.tokenizer)] if args.tokenizer else [])
    if args.mode == "dry":
        cmd += ["--dry-run"]
    else:
        cmd += ["--budget-seconds", str(args.budget_seconds), "--limit-val-tokens", str(args.limit_val_tokens)]
    print(f"{preset}: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1 = a dry run that does not fit: still a result
        raise SystemExit(f"{preset} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)
    result["wall_seconds"] = time.perf_counter() - t0
    target.write_text(json.dumps(result, default=str, indent=1))
    return result


def _verdicts(r: dict) -> str:
    return "; ".join(f"{e['methods']}: {e.get('audit', '-')}{' ' + e['label'] if e['label'] else ''}"
                     for e in r["evals"])


def dry_table(results: dict[str, dict]) -> str:
    head = (f"{'preset':<22} {'params':>11} {'pack':<30} {'dry-run bytes':>14} {'projected':>11} "
            f"{'B/param':>8} {'code (wrapper)':>22} {'fits':>5} {'margin':>9} {'s':>5}  eval methods run: audit")
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        d, p, proj = r["dry_run"], r["pack"], r["projection"]
        pack = f"{p['quant']} / {p['compressor']}"
        lines.append(f"{name:<22} {d['params']:>11,} {pack:<30} {d['measured_total_bytes']:>14,} "
                     f"{d['projected_total_bytes']:>11,} {proj['integer_bytes_per_param']:>8.4f} "
                     f"{d['code_bytes']:>9,} ({d['code_wrapper']}) {'yes' if d['projected_fits'] else 'NO':>5} "
                     f"{d['projected_headroom_bytes']:>+9,} {d['seconds']:>5.0f}  {_verdicts(r)}")
    sources = sorted({r["projection"]["source"] for r in results.values()})
    lines += ["", "dry-run bytes: the artifact of the dry-run (2-step) weights + the exported code; projected: trained "
              "weights, per group (floats and scales exact, integer weights at the B/param shown), sources:"]
    lines += [f"  - {s}" for s in sources]
    return "\n".join(lines)


def accounting_table(results: dict[str, dict]) -> str:
    """Per preset and group: the bytes stored as they are (floats, scales, gates, LQER) as `pgolf info`
    plans them from the quantizer's byte model, and as pack stored them on the dry-run weights."""
    from pgolf.artifact.estimate import planned_groups
    from pgolf.job.preset import load_preset

    head = f"{'preset':<22} {'group':<24} {'floats':>9} {'scales':>9} {'gates':>7} {'lqer':>7}  planned = stored"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        stored = r["pack"]["stored_bytes_per_group"]
        planned = {k: g.as_dict() for k, g in planned_groups(load_preset(name), r["pack"]["lqer_matrices"]).items()}
        for group in sorted(set(stored) | set(planned)):
            s, pl = stored.get(group, {}), planned.get(group, {})
            lines.append(f"{name:<22} {group:<24} {s.get('floats', 0):>9,} {s.get('scales', 0):>9,} "
                         f"{s.get('gates', 0):>7,} {s.get('lqer', 0):>7,}  {'yes' if s == pl else 'NO: ' + str(pl)}")
    return "\n".join(lines)


def minis_table(results: dict[str, dict]) -> str:
    head = (f"{'preset':<28} {'steps':>6} {'pre-quant':>9} {'pack':<26} {'total bytes':>11}  "
            f"roundtrip bpb per composition (audit verdict)")
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        p = r["pack"]
        rows = "; ".join(f"{e['methods']} {e['val_bpb']:.4f} ({e.get('audit', '-')}"
                         f"{', ' + e['label'] if e['label'] else ''})" for e in r["evals"])
        lines.append(f"{name:<28} {r['train']['steps']:>6} {r['train']['val_bpb']:>9.4f} "
                     f"{p['quant'] + ' / ' + p['compressor']:<26} {p['total_bytes']:>11,}  {rows}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["dry", "minis"])
    ap.add_argument("--data", type=Path, help="shard directory (dry runs default to the embedded corpus)")
    ap.add_argument("--tokenizer", type=Path)
    ap.add_argument("--budget-seconds", type=float, default=600.0)
    ap.add_argument("--limit-val-tokens", type=int, default=131072)
    ap.add_argument("--presets", help="comma-separated subset")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    if args.mode == "minis" and not args.data:
        ap.error("minis needs --data (and --tokenizer when the shards do not carry tokenizer.model)")
    names = args.presets.split(",") if args.presets else (CONTEST if args.mode == "dry" else MINIS)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in names:
        target = args.out / f"{name}.json"
        if args.table_only:
            if target.is_file():
                results[name] = json.loads(target.read_text())
            continue
        results[name] = run_one(name, args, args.out)
    print(dry_table(results) + "\n\n" + accounting_table(results) if args.mode == "dry" else minis_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
