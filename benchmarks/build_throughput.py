"""How fast `data build` tokenizes: MB of text per second, one process against `--workers N`.

    python benchmarks/build_throughput.py CORPUS TOKENIZER [--transform caseops] [--workers 1,2] [--val-docs 500]

CORPUS is any `data build` input (the dev corpus folder, or the contest's docs_selected.jsonl cut
to a few MB with `head`). Every row builds the same shards (checked: identical manifests), so the
ratio is the speed-up alone. The first row is the baseline: one process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from pgolf.data.build import build_shards


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("tokenizer", type=Path)
    ap.add_argument("--transform", choices=["caseops"])
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts; the first is the baseline")
    ap.add_argument("--val-docs", type=int, default=500)
    args = ap.parse_args()
    rows, first = [], None
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            m = build_shards([args.corpus], out, tokenizer=args.tokenizer, val_docs=args.val_docs, progress=False,
                             transform=args.transform, workers=workers)
            secs = time.perf_counter() - t0
        splits = m["splits"]
        if first is not None and splits != first["splits"]:
            print(f"build_throughput: workers={workers} built different shards", file=sys.stderr)
            return 1
        first = first or m
        mb = sum(s["utf8_bytes"] for s in splits.values()) / 1e6
        rows.append((workers, secs, mb, sum(s["tokens"] for s in splits.values())))
    base = rows[0][2] / rows[0][1]
    print(f"data build of {args.corpus} ({rows[0][2]:.1f} MB, transform {args.transform or 'none'})")
    print(f"{'workers':>8}{'seconds':>10}{'MB/s':>8}{'tokens/s':>12}{'x one':>8}")
    for workers, secs, mb, tokens in rows:
        print(f"{workers:>8}{secs:>10.1f}{mb / secs:>8.2f}{tokens / secs:>12,.0f}{mb / secs / base:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
