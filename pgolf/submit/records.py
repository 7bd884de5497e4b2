"""`pgolf submit RUNS --name … --author … --github-id … --track …`: a records folder in the contest's
layout, `records/track_<track>/YYYY-MM-DD_<Name>/`:
README.md, submission.json, train_seed<N>.log per seed, train_gpt.py (the single-file export of the
runs' preset — its bytes are the counted code), requirements.txt, and the plots.

The record track (`10min_16mb`) is refused when any artifact is over budget, any seed's eval
methods were flagged by `pgolf audit` or were never audited, or the runs disagree on the preset;
`--track non_record_16mb` writes it anyway, saying why in the README.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from pgolf.audit.verdict import verdict_line
from pgolf.config import preset_from_dict
from pgolf.errors import BudgetError, DataError
from pgolf.submit.plots import plot_bytes, plot_losses
from pgolf.submit.schema import SUBMISSION_SCHEMA, validate
from pgolf.io import atomic_write_bytes, write_json
from pgolf.rundir import ARTIFACT_FILE, SCRIPT_FILE, STATE_FILE, TRAIN_LOG_FILE, audit_record, find_results

TRACKS = ("10min_16mb", "non_record_16mb")
CONTEST_REQUIREMENTS = ["torch", "numpy", "sentencepiece"]


def seed_run(path: Path) -> tuple[Path, dict]:
    """(run directory, results) for a seed dir or a run dir."""
    found = find_results(path)
    if found is not None and path.is_dir():
        return found.parent, json.loads(found.read_text())
    raise DataError(f"{path}: no results.json (pass run directories written by pgolf run --out or pgolf seeds)")


def audit_verdict(run: Path, methods: str) -> str:
    record = audit_record(run / ARTIFACT_FILE)
    if not record.is_file():
        return "not audited"
    entry = json.loads(record.read_text()).get(methods)
    if entry is None:
        return "not audited"
    return verdict_line(entry)


def slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    if not s:
        raise DataError(f"--name {name!r} has no letters or digits")
    return s


def submit(runs: list[Path], name: str, author: str, github_id: str, track: str, out_root: Path,
           blurb: str = "", significance: dict | None = None, date: str | None = None) -> dict:
    if track not in TRACKS:
        raise DataError(f"--track must be one of {', '.join(TRACKS)}, got {track!r}")
    loaded = [seed_run(Path(r)) for r in runs]
    presets = {res["preset"] for _, res in loaded}
    problems = []
    if len(presets) > 1:
        problems.append(f"the runs use different presets ({', '.join(sorted(presets))})")
    seeds = []
    for run, res in loaded:
        methods = res["eval"].get("method", "standard")
        verdict = audit_verdict(run, methods)
        over = not res["pack"].get("fits", res["pack"]["total_bytes"] <= res["pack"]["budget_bytes"])
        if over:
            problems.append(f"{run}: artifact {res['pack']['total_bytes']:,} B is over the "
                            f"{res['pack']['budget_bytes']:,}-byte budget")
        if verdict != "pass":
            problems.append(f"{run}: eval methods [{methods}] audit: {verdict}")
        stream = res["eval"].get("stream_audit")
        if stream and stream["flagged"]:
            problems.append(f"{run}: the whole-evaluation checks flagged {', '.join(stream['flagged'])}")
        seeds.append({"seed": res.get("seed"), "val_loss": res["eval"]["val_loss"], "val_bpb": res["eval"]["val_bpb"],
                      "whole_evaluation": verdict_line(stream) if stream else "not recorded",
                      "bytes_total": res["pack"]["total_bytes"], "bytes_code": res["pack"]["code_bytes"],
                      "bytes_model": res["pack"]["model_bytes"], "audit": verdict, "methods": methods,
                      "train_steps": res["train"]["steps"], "train_time_ms": res["train"]["train_time_ms"]})
    if significance is not None and not significance.get("significant"):
        problems.append(f"not significant under the contest's rule: {significance.get('verdict', '')}")
    if problems and track == "10min_16mb":
        raise BudgetError("refusing a record submission: " + "; ".join(problems)
                          + " (use --track non_record_16mb to write it as a non-record submission)")
    date = date or dt.date.today().isoformat()
    folder = Path(out_root) / "records" / f"track_{track}" / f"{date}_{slug(name)}"
    folder.mkdir(parents=True, exist_ok=True)
    first_run, first = loaded[0]
    preset = preset_from_dict(json.loads((first_run / STATE_FILE).read_text())["preset"]) \
        if (first_run / STATE_FILE).is_file() else None

    from pgolf.artifact.export import preset_requirements, submission_script  # the counted code

    code = submission_script(preset)[0].encode("utf-8") if preset is not None else b""
    needs = CONTEST_REQUIREMENTS + (preset_requirements(preset) if preset is not None else [])
    atomic_write_bytes(folder / SCRIPT_FILE, code)
    atomic_write_bytes(folder / "requirements.txt", ("\n".join(needs) + "\n").encode())
    for (run, res), s in zip(loaded, seeds):
        log = run / TRAIN_LOG_FILE
        if log.is_file():
            atomic_write_bytes(folder / f"train_seed{s['seed']}.log", log.read_bytes())
    mean = lambda k: sum(s[k] for s in seeds) / len(seeds)  # noqa: E731
    model_bytes = max(s["bytes_model"] for s in seeds)
    submission = {"name": name, "val_bpb": mean("val_bpb"), "val_loss": mean("val_loss"),
                  "bytes_total": len(code) + model_bytes, "bytes_code": len(code),
                  "blurb": blurb or f"pgolf preset {first['preset']}, {len(seeds)} seeds",
                  "author": author, "github_id": github_id, "date": date, "track": track, "seeds": seeds}
    if significance:
        submission["significance"] = {k: significance[k] for k in
                                      ("reference_val_loss", "mean_gain_nats", "t", "p_value", "significant", "verdict")}
    validate(submission, SUBMISSION_SCHEMA, "submission.json")
    write_json(folder / "submission.json", submission)
    plots = {"loss.png": plot_losses(first_run, folder / "loss.png"),
             "bytes.png": plot_bytes(first["pack"]["raw_bytes_per_group"], len(code), first["pack"]["budget_bytes"],
                                     folder / "bytes.png")}
    atomic_write_bytes(folder / "README.md", readme(submission, first, preset, problems).encode())
    return {"folder": str(folder), "submission": submission, "problems": problems,
            "files": sorted(p.name for p in folder.iterdir()), "plots": [str(p) for p in plots.values()]}


def readme(sub: dict, first: dict, preset, problems: list[str]) -> str:
    lines = [f"# {sub['name']}", "", sub["blurb"], "",
             f"**val_bpb {sub['val_bpb']:.5f}** (mean of {len(sub['seeds'])} seeds), val_loss {sub['val_loss']:.5f}; "
             f"{sub['bytes_total']:,} bytes total ({sub['bytes_code']:,} code + model). Track: `{sub['track']}`.", ""]
    if problems:
        lines += ["**Not a record submission:**", *[f"- {p}" for p in problems], ""]
    lines += ["## Results per seed", "",
              "| seed | val_loss | val_bpb | bytes | steps | eval methods | audit (window) | whole-evaluation checks |",
              "|---|---:|---:|---:|---:|---|---|---|"]
    lines += [f"| {s['seed']} | {s['val_loss']:.5f} | {s['val_bpb']:.5f} | {s['bytes_total']:,} | {s['train_steps']} "
              f"| {s['methods']} | {s['audit']} | {s.get('whole_evaluation', 'not recorded')} |" for s in sub["seeds"]]
    lines += ["", "The audit reruns the pipeline on a window (future invariance, single pass, a black-box "
              "normalization probe); the whole-evaluation checks (normalization at positions sampled over the "
              "entire stream, score before adapt for every state update) were recorded during the scoring pass "
              "that produced val_bpb."]
    if "significance" in sub:
        lines += ["", f"Significance (contest rule, >= 0.005 nats at p < 0.01): {sub['significance']['verdict']}"]
    lines += ["", "## Method", ""]
    if preset is not None:
        m, t = preset.model, preset.train
        lines += [f"Preset `{preset.name}`: {m.num_layers} layers, d={m.model_dim}, {m.num_heads} heads / "
                  f"{m.num_kv_heads} KV heads, MLP {m.mlp_mult}x {m.activation}, vocab {m.vocab_size}; "
                  f"{t.tokens_per_step:,} tokens/step, seq {t.seq_len}, cap {t.max_wallclock_seconds:g} s.", "",
                  "Techniques (add-ons with their settings):", ""]
        lines += [f"- `{name}`: {json.dumps(cfg) if cfg else 'defaults'}" for name, cfg in sorted(m.addons.items())]
        lines += [f"- quantization `{preset.pack.quant}`, compressor `{first['pack']['compressor']}`",
                  f"- evaluation: `{first['eval'].get('method', 'standard')}`"]
    lines += ["", "## Size", "", "| part | bytes |", "|---|---:|", f"| code (train_gpt.py) | {sub['bytes_code']:,} |"]
    lines += [f"| {g} (raw, before compression) | {n:,} |" for g, n in sorted(first["pack"]["raw_bytes_per_group"].items())]
    lines += [f"| model, compressed | {first['pack']['model_bytes']:,} |", "",
              "![loss](loss.png) ![bytes](bytes.png)", "", "## Reproduce", "", "```bash",
              "pip install -r requirements.txt",
              "torchrun --standalone --nproc_per_node=8 train_gpt.py   # DATA_PATH / TOKENIZER_PATH or the contest's defaults",
              "```", ""]
    return "\n".join(lines)
