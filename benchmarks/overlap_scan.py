"""The overlap scanner (pgolf.data.overlap) on the dev corpus: speed, false positives, recall.

    python benchmarks/overlap_scan.py --dev-data DIR --out benchmarks/results/overlap   # or PGOLF_DEV_DATA=DIR

Builds the dev corpus's benchmark split (`--val-fraction 0.1`, SP-1024) twice: as it comes
(`--keep-overlap`) and as `pgolf data build` writes it by default (training documents holding
validation text left out). Then:
- speed: validation documents fingerprinted per second, training tokens scanned per second, against
  the baseline measured in the same run — the exhaustive count (every window of every training
  token hashed, sorted, and every validation window looked up: no sampling);
- false positives: documents the sampled scan finds whose exhaustive share is below the threshold
  (and false negatives the other way), on the split as it comes; how many validation documents
  really share at least half their windows with training there (natural duplicates), and in the
  default build;
- recall: the split with copies of 20 % of the validation documents added to training, exact and
  with one token in 100 / in 20 changed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.devdata import dev_data_dir, dev_tokenizer  # noqa: E402
from pgolf.data.overlap import (MIN_SHARE, WINDOW, Fingerprints, OverlapScanner, scan_data_dir,  # noqa: E402
                                split_documents, window_hashes)
from pgolf.data.shards import list_shards, load_split, read_shard  # noqa: E402


def build(root: Path, out: Path, keep: bool) -> Path:
    if not (out / "manifest.json").is_file():
        cmd = [sys.executable, "-m", "pgolf", "data", "build", str(root / "corpus"), "--tokenizer",
               str(dev_tokenizer(root)), "--val-fraction", "0.1", "--out", str(out), "--json"]
        subprocess.run(cmd + (["--keep-overlap"] if keep else []), check=True, stdout=subprocess.DEVNULL)
    return out


def exhaustive(val_docs: list[np.ndarray], train: np.ndarray) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    every = np.unique(window_hashes(train, WINDOW))

    def share(doc: np.ndarray) -> float:
        if doc.size < WINDOW:
            return float("nan")
        own = np.unique(window_hashes(doc, WINDOW))
        at = np.minimum(np.searchsorted(every, own), every.size - 1)
        return float((every[at] == own).mean())

    shares = np.array([share(d) for d in val_docs])
    return shares, time.perf_counter() - t0


def sampled_scan(val: np.ndarray, train: np.ndarray) -> tuple[object, float, float]:
    t0 = time.perf_counter()
    fp = Fingerprints.of(split_documents(val, 1))
    t1 = time.perf_counter()
    scanner = OverlapScanner(fp, bos_id=1)
    scanner.scan(train)
    return scanner.result(), t1 - t0, time.perf_counter() - t1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev-data", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/overlap"))
    args = ap.parse_args()
    root = dev_data_dir(args.dev_data)
    args.out.mkdir(parents=True, exist_ok=True)
    raw = build(root, args.out / "as-it-comes", keep=True)
    default = build(root, args.out / "default-build", keep=False)
    val = np.asarray(load_split(raw, "val"))
    train = np.concatenate([np.asarray(read_shard(p)) for p in list_shards(raw, "train")])
    docs = [d for _, d in split_documents(val, 1)]

    overlap, fp_s, scan_s = sampled_scan(val, train)
    shares, exh_s = exhaustive(docs, train)
    long = ~np.isnan(shares)
    truth = set(np.flatnonzero(long & (shares >= MIN_SHARE)).tolist())
    found = set(overlap.found.tolist())
    fpos, fneg = sorted(found - truth), sorted(truth - found)
    default_scan = scan_data_dir(default)
    raw_manifest = json.loads((raw / "manifest.json").read_text())
    default_manifest = json.loads((default / "manifest.json").read_text())

    rng = np.random.default_rng(0)
    picks = rng.choice(len(docs), size=len(docs) // 5, replace=False)
    kinds = {"exact": picks[0::3], "1 in 100 changed": picks[1::3], "1 in 20 changed": picks[2::3]}
    copies = []
    for kind, ids in kinds.items():
        every = {"exact": 0, "1 in 100 changed": 100, "1 in 20 changed": 20}[kind]
        for i in ids:
            d = docs[i].copy()
            if every:
                d[every // 2::every] = (d[every // 2::every].astype(np.int64) + 7) % 1000 + 4
            copies.append(d)
    injected, _, inj_s = sampled_scan(val, np.concatenate([train] + copies))
    recall = {k: float(np.isin(ids, injected.found).mean()) for k, ids in kinds.items()}

    rows = [("sampled scan (pgolf.data.overlap)", scan_s, fp_s), ("exhaustive count (baseline)", exh_s, None)]
    print(f"dev corpus split: {len(docs):,} validation documents ({val.size:,} tokens), "
          f"{train.size:,} training tokens (as it comes)")
    print(f"{'method':<36} {'seconds':>8} {'train tok/s':>13} {'val docs/s':>11} {'speed vs baseline':>18}")
    for name, secs, fps in rows:
        docs_rate = f"{len(docs) / fps:,.0f}" if fps else "-"
        print(f"{name:<36} {secs:>8.2f} {train.size / secs:>13,.0f} {docs_rate:>11} {exh_s / secs:>17.1f}x")
    print()
    print(f"validation documents sharing >= {MIN_SHARE:.0%} of their windows with training (exhaustive): "
          f"{len(truth)} ({100 * len(truth) / len(docs):.2f} %) as it comes; the sampled scan finds {len(found)}")
    print(f"false positives (found, exhaustive share < {MIN_SHARE}): {len(fpos)} of {len(docs):,} "
          f"({100 * len(fpos) / len(docs):.2f} %; their exhaustive shares "
          f"{', '.join(f'{shares[i]:.2f}' for i in fpos) or '-'}); false negatives: {len(fneg)} (exhaustive shares "
          f"{', '.join(f'{shares[i]:.2f}' for i in fneg) or '-'}, sampled {', '.join(f'{overlap.share[i]:.2f}' for i in fneg) or '-'})")
    print(f"largest |sampled - exhaustive| share: {np.nanmax(np.abs(overlap.share - np.nan_to_num(shares))):.3f}")
    print(f"default build: {default_manifest['overlap']['train_docs_matching_val']} training documents left out "
          f"({default_manifest['overlap']['tokens']:,} tokens); its scan finds {default_scan.found.size}")
    print(f"recall with {len(copies)} copies of validation documents added to training ({inj_s:.2f} s): "
          + ", ".join(f"{k} {100 * v:.0f} %" for k, v in recall.items()))
    result = {"val_docs": len(docs), "val_tokens": int(val.size), "train_tokens": int(train.size),
              "scan_seconds": scan_s, "fingerprint_seconds": fp_s, "exhaustive_seconds": exh_s,
              "natural_overlap_docs": len(truth), "found": len(found), "false_positives": fpos,
              "false_negatives": fneg, "default_build_left_out": default_manifest["overlap"],
              "raw_build_overlap": raw_manifest["overlap"], "default_build_found": int(default_scan.found.size),
              "recall": recall}
    (args.out / "overlap_scan.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
