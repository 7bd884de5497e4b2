"""`pgolf report RUN`: one self-contained HTML page (plots embedded as base64 PNG, readable offline)
with the run's training curve, size breakdown, eval results and, optionally, a table of eval
methods (`--evals FILE`, the JSON of benchmarks/eval_methods.py)."""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path

from pgolf.submit.plots import plot_bytes, plot_eval_methods, plot_losses
from pgolf.submit.records import seed_run
from pgolf.io import atomic_write_bytes


def _img(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _table(rows: list[tuple[str, object]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def write_report(run: Path, out: Path | None = None, evals: Path | None = None) -> Path:
    run_dir, res = seed_run(Path(run))
    out = Path(out) if out else run_dir / "report.html"
    tr, pk, ev = res["train"], res["pack"], res["eval"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        figs = [plot_losses(run_dir, tmp / "loss.png"),
                plot_bytes(pk["raw_bytes_per_group"], pk["code_bytes"], pk["budget_bytes"], tmp / "bytes.png")]
        bpbs = {ev.get("method", "standard"): ev["val_bpb"]}
        if evals:
            bpbs.update({k: v["bpb"] for k, v in json.loads(Path(evals).read_text())["rows"].items()})
        figs.append(plot_eval_methods(bpbs, tmp / "eval.png"))
        images = "".join(_img(f) for f in figs)
    body = [f"<h1>pgolf run {html.escape(str(run_dir))}</h1>",
            _table([("preset", res["preset"]), ("seed", res.get("seed")), ("steps", tr["steps"]),
                    ("train time (s)", f"{tr['train_time_ms'] / 1000:.1f}"),
                    ("pre-quant val_bpb", f"{tr['val_bpb']:.5f}"),
                    ("round-trip val_bpb", f"{ev['val_bpb']:.5f}"), ("eval methods", ev.get("method", "standard")),
                    ("eval seconds", f"{ev['eval_seconds']:.1f}"), ("quant / compressor", f"{pk['quant']} / {pk['compressor']}"),
                    ("total bytes", f"{pk['total_bytes']:,} of {pk['budget_bytes']:,}"),
                    ("code / model bytes", f"{pk['code_bytes']:,} / {pk['model_bytes']:,}")]),
            "<h2>Eval methods</h2>", _table([(k, f"{v:.5f}") for k, v in bpbs.items()]),
            "<h2>Plots</h2>", images]
    atomic_write_bytes(out, _page("pgolf report", body).encode("utf-8"))
    return out


def _page(title: str, body: list[str]) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
            "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}img{max-width:100%;display:block;margin:1em 0}"
            "</style></head><body>" + "".join(body) + "</body></html>")


def write_sweep_report(directory: Path, out: Path | None = None) -> Path:
    """The page of a sweep (`pgolf sweep --out DIR`): best trial and preset, every trial, the plots."""
    from pgolf.sweep.report import write_outputs

    r = write_outputs(Path(directory))
    out = Path(out) if out else Path(directory) / "report.html"
    rows = [(f"trial {t['number']}", f"{t['state']} "
             + (f"{t['val_bpb']:.5f} " if t["val_bpb"] is not None else "")
             + (" ".join(t["overrides"]) or "(base preset)") + (f" [{t['note']}]" if t["note"] else ""))
            for t in r["trials"]]
    body = [f"<h1>pgolf sweep {html.escape(str(directory))}</h1>"]
    if "best" in r:
        body.append(_table([("best trial", r["best"]["number"]), ("round-trip val_bpb", f"{r['best']['val_bpb']:.5f}"),
                            ("overrides", " ".join(r["best"]["overrides"]) or "(base preset)"),
                            ("preset file", r["best_preset"])]))
    body += ["<h2>Trials</h2>", _table(rows), "<h2>Plots</h2>", "".join(_img(Path(p)) for p in r["plots"])]
    atomic_write_bytes(out, _page("pgolf sweep", body).encode("utf-8"))
    return out
