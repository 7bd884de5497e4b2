"""How the `pergroup` compressor's backends compare on real quantized codes, per group.

Takes trained runs (or dry runs), quantizes their final weights the way the 1.0611 record does —
SDClip int6 rows with per-group k (attention 13, MLP 11.5; `--k` overrides), the embedding at int7
with k 14, round to nearest (GPTQ changes which codes, not their statistics much) — groups the
codes as `pergroup` does (one group per kind of matrix over all layers), and codes each group with
every backend: rANS under per-class histograms (`ans`), the record's sorted column-major stream
under Brotli-11 and LZMA-9e, and, when the `zpaq` package happens to be installed, ZPAQ level 5
(the algorithm of the record's `lrzip -z`; pgolf does not depend on it). Also: the order-0
entropy of each group's codes, and whole-artifact Brotli (the body as one stream) for scale.

    python benchmarks/compression.py RUN [RUN ...] [--json]

Bytes are exact (every stream is produced); ratios are against Brotli on the same stream.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import lzma
import time

import numpy as np

from pgolf.artifact.format import Artifact, _body
from pgolf.config import PackConfig, preset_from_dict
from pgolf.model.roles import roles_of_config
from pgolf.quant import ans, pergroup
from pgolf.quant.layout import relayout
from pgolf.quant.registry import get_quantizer
from pgolf.train.checkpoint import load_checkpoint


def entropy_bytes(x: np.ndarray) -> float:
    _, c = np.unique(x, return_counts=True)
    p = c / c.sum()
    return float(-(c * np.log2(p)).sum() / 8)


def measure(run: str, k: dict) -> dict:
    weights, state = load_checkpoint(run)
    preset = preset_from_dict(state["preset"])
    cfg = PackConfig(clip_search="sdclip", sdclip_k=k, embedding_bits=7)
    tensors = relayout(get_quantizer("gptq-lite-int6")(weights, cfg, roles_of_config(preset.model)), "bytes")
    body = _body(Artifact(preset={}, quant="gptq-lite-int6", tensors=tensors))
    import brotli

    rows, totals = [], {}
    backends = ["ans", "brotli", "lzma"] + (["zpaq"] if importlib.util.find_spec("zpaq") else [])
    for key, cuts in pergroup._code_groups(body).items():
        ms = [np.frombuffer(body, dtype=np.int8, count=c.nbytes, offset=c.start).reshape(c.shape) for c in cuts]
        row = {"group": key.split("/")[0], "codes": sum(m.size for m in ms),
               "order0_entropy": entropy_bytes(np.concatenate([m.reshape(-1) for m in ms]))}
        raw = pergroup._context_payload(key, ms)
        for b in backends:
            t = time.perf_counter()
            if b == "ans":
                n = len(ans.encode_group(ms))
            elif b == "brotli":
                n = len(brotli.compress(raw, quality=11, lgwin=24))
            elif b == "lzma":
                n = len(lzma.compress(raw, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME))
            else:
                import zpaq

                n = len(zpaq.compress(raw, level=5))
            row[b] = n
            row[b + "_s"] = time.perf_counter() - t
            totals[b] = totals.get(b, 0) + n
        totals["order0_entropy"] = totals.get("order0_entropy", 0) + row["order0_entropy"]
        totals["codes"] = totals.get("codes", 0) + row["codes"]
        rows.append(row)
    whole = len(brotli.compress(body, quality=11, lgwin=24))
    return {"run": run, "preset": preset.name, "k": k, "groups": rows, "totals": totals,
            "whole_body_brotli": whole, "pergroup_bytes": len(pergroup.pergroup_compress(body)), "body_bytes": len(body)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="pgolf run directories (model.safetensors + state.json)")
    ap.add_argument("--k", default="attention=13.0,mlp=11.5,embedding=14.0,other=12.85",
                    help="SDClip k per group (the record's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    k = {g: float(v) for g, v in (kv.split("=") for kv in args.k.split(","))}
    results = [measure(r, k) for r in args.runs]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        print(f"\n{r['run']} ({r['preset']}), SDClip k {r['k']}; bytes, and ratio to Brotli on the same stream")
        names = [b for b in ("ans", "brotli", "lzma", "zpaq") if b in r["totals"]]
        head = f"{'group':<20}{'codes':>11}{'order-0':>11}" + "".join(f"{n:>17}" for n in names)
        print(head + "\n" + "-" * len(head))
        for g in r["groups"] + [{"group": "total", **r["totals"]}]:
            cells = "".join(f"{g[n]:>10,} {g[n] / g['brotli']:.4f}" for n in names)
            print(f"{g['group']:<20}{g['codes']:>11,}{g['order0_entropy']:>11,.0f}{cells}")
        print(f"whole body as one Brotli-11 stream: {r['whole_body_brotli']:,} B; pergroup (best backend per group, "
              f"everything else Brotli): {r['pergroup_bytes']:,} B; body {r['body_bytes']:,} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
