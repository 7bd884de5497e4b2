"""The `pgolf` command. Subcommands only parse arguments and call the stage that does the work.

Every command that reports results accepts `--json` and then prints exactly one JSON object on
stdout (logs and progress go to stderr). User errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

from pgolf.config import CALIBRATION_SOURCES, CODE_WRAPPERS
from pgolf.rundir import SCRIPT_FILE, WEIGHTS_FILE
from pgolf.errors import ConfigError, PgolfError
from pgolf.runtime import is_main_process


def _emit(args: argparse.Namespace, result: dict, human: Callable[[dict], str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, sort_keys=True, default=str))
    else:
        print(human(result))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if math.isfinite(v) and abs(v) < 1e6 else f"{v:.6g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {_fmt(v)}" for k, v in rows)


# ----------------------------------------------------------------------------- data
def cmd_data_build(args: argparse.Namespace) -> int:
    from pgolf.data.build import build_shards

    if args.tokenizer is None and args.vocab_size is None:
        raise PgolfError("give --tokenizer MODEL to load one, or --vocab-size N to train one")
    m = build_shards(args.inputs, args.out, tokenizer=args.tokenizer, vocab_size=args.vocab_size or 1024,
                     byte_fallback=not args.no_byte_fallback, val_docs=args.val_docs,
                     val_fraction=args.val_fraction, shard_tokens=args.shard_tokens,
                     progress=False if args.json else None, transform=args.transform,
                     workers=args.workers or os.cpu_count() or 1, max_train_docs=args.max_train_docs,
                     keep_overlap=args.keep_overlap)
    s, ov = m["splits"], m["overlap"]
    _emit(args, {"out": str(args.out), **m}, lambda r: table([
        ("out", str(args.out)), ("tokenizer", m["tokenizer"]["source"]),
        ("vocab", m["tokenizer"]["vocab_size"]),
        ("train docs / tokens", f"{s['train']['docs']:,} / {s['train']['tokens']:,}"),
        ("val docs / tokens", f"{s['val']['docs']:,} / {s['val']['tokens']:,}"),
        ("train shards", len(s["train"]["shards"])), ("val shards", len(s["val"]["shards"])),
        ("train docs holding val text", f"{ov['train_docs_matching_val']:,} ({ov['tokens']:,} tokens): "
                                        + ("written anyway (--keep-overlap)" if ov["written"] else "left out")),
        *([("transform", m["transform"]), ("val bytes charged / raw", f"{s['val']['counted_bytes']:,} / "
                                            f"{s['val']['utf8_bytes']:,}")] if m.get("transform") else []),
    ]))
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from pgolf.data.fetch import LocalHub, fetch

    hub = LocalHub(args.mirror) if args.mirror else None
    r = fetch(args.out, args.variant, args.train_shards, hub=hub, progress=False if args.json else None,
              with_docs=args.with_docs)
    _emit(args, r, lambda r: table(list(r.items())))
    if "docs" in r and not args.json:
        val = r["docs_val"] or 50_000
        print(f"next, e.g.: pgolf data build {r['docs']} --val-docs {val} --transform caseops "
              "--tokenizer CASEOPS.model --out DIR")
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from pgolf.data.build import resolve_tokenizer
    from pgolf.data.stats import split_stats

    r = split_stats(args.dir, resolve_tokenizer(args.dir, args.tokenizer))
    for w in r["warnings"]:
        print(f"pgolf: warning: {w}", file=sys.stderr)

    def human(r: dict) -> str:
        cols = ["tokens", "docs", "counted_bytes", "unk_tokens", "hidden_bytes", "normalized_bytes", "utf8_bytes"]
        lines = [f"{'split':<6} " + " ".join(f"{c:>16}" for c in cols)]
        for split, e in r["splits"].items():
            lines.append(f"{split:<6} " + " ".join(f"{_fmt(e.get(c, 'n/a')):>16}" for c in cols))
        return "\n".join(lines)

    _emit(args, r, human)
    return 0


# ----------------------------------------------------------------------------- train / pack / eval
def _preset(args: argparse.Namespace):
    from pgolf.job.preset import load_preset

    overrides = list(args.set or [])
    if getattr(args, "budget_seconds", None) is not None:
        overrides.append(f"train.max_wallclock_seconds={args.budget_seconds}")
    return load_preset(args.preset, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from pgolf.runtime import init_runtime, shutdown
    from pgolf.train.loop import train

    if args.resume:
        from pgolf.config import preset_from_dict
        from pgolf.train.checkpoint import load_checkpoint

        _, state = load_checkpoint(args.resume)
        if state.get("complete"):
            raise PgolfError(f"{args.resume}: this run already finished; nothing to resume")
        preset = preset_from_dict(state["preset"])
        data = args.data or Path(state["data"]["dir"])
        tokenizer = args.tokenizer or state["data"]["tokenizer"]
        out = args.resume
    else:
        if args.data is None or args.out is None:
            raise PgolfError("pgolf train needs --data and --out (or --resume RUN)")
        preset, data, tokenizer, out = _preset(args), args.data, args.tokenizer, args.out
        from pgolf.job.run import check_projected_fit

        check_projected_fit(preset, args.strict_budget, warn=is_main_process())
    runtime = init_runtime(args.device)
    fresh = not Path(out).exists()
    try:
        summary = train(preset, data, out, runtime, tokenizer=tokenizer, progress=False if args.json else None,
                        resume=bool(args.resume))
    except PgolfError:
        if fresh and runtime.is_main and not (Path(out) / WEIGHTS_FILE).exists():
            import shutil

            shutil.rmtree(out, ignore_errors=True)  # leave nothing half-written behind a failed start
        raise
    finally:
        shutdown()
    if runtime.is_main:
        _emit(args, {"run_dir": str(out), **summary}, lambda r: table(list(r.items())))
    return 0


def _pack_rows(r: dict) -> list[tuple[str, Any]]:
    tried = ", ".join(f"{k} {v:,}" for k, v in sorted(r["compressed_sizes"].items(), key=lambda kv: kv[1]))
    return [("artifact", r["artifact"]),
            ("quant / compressor / layout", f"{r['quant']} / {r['compressor']} / {r['layout']}"),
            ("compressors tried (bytes, best layout)", tried),
            *[(f"  {g} (quantized, before compression)", n)
              for g, n in sorted(r["raw_bytes_per_group"].items(), key=lambda kv: -kv[1])],
            ("code bytes", r["code_bytes"]), ("model bytes", r["model_bytes"]),
            ("total bytes", r["total_bytes"]), ("budget", r["budget_bytes"]),
            ("headroom", r["headroom_bytes"])]


def cmd_pack(args: argparse.Namespace) -> int:
    from pgolf.artifact.pack import pack_run

    r = pack_run(args.run, args.out, args.quant, args.compressor, args.budget, args.allow_over_budget)
    _emit(args, r, lambda r: table(_pack_rows(r)))
    return 0 if r["fits"] else 1


def cmd_export(args: argparse.Namespace) -> int:
    from pgolf.artifact.export import export_script, lzma_wrap, preset_requirements, wrap
    from pgolf.job.preset import load_preset
    from pgolf.io import atomic_write_bytes

    preset = load_preset(args.preset, args.set)
    source = export_script(preset)
    sizes = {"plain": len(source.encode("utf-8"))}
    if args.minify or args.lzma:  # the explicit flags, as before
        final = source
        if args.minify:
            final = wrap(source, "minified")
            sizes["minified"] = len(final.encode("utf-8"))
        if args.lzma:
            final = lzma_wrap(final)
            sizes["lzma_wrapped"] = len(final.encode("utf-8"))
        wrapper = "+".join(w for w, on in (("minified", args.minify), ("lzma", args.lzma)) if on)
    else:
        wrapper = args.wrapper or preset.pack.code_wrapper
        final = wrap(source, wrapper)
        sizes[wrapper] = len(final.encode("utf-8"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, final.encode("utf-8"))
    r = {"out": str(args.out), "preset": args.preset, "code_bytes": len(final.encode("utf-8")), "sizes": sizes,
         "wrapper": wrapper, "requirements": preset_requirements(preset)}
    _emit(args, r, lambda r: table([("out", r["out"]), *[(f"bytes ({k})", v) for k, v in sizes.items()],
                                    ("code bytes counted", r["code_bytes"]), ("wrapper", r["wrapper"]),
                                    ("requirements beyond torch/numpy/sentencepiece",
                                     ", ".join(r["requirements"]) or "-")]))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from pgolf.artifact.load import model_from_state
    from pgolf.quant.calibration import calibrate, source_batches
    from pgolf.train.checkpoint import load_checkpoint

    weights, state = load_checkpoint(args.run)
    model = model_from_state(state["preset"], weights)
    seq_len = args.seq_len or state["preset"]["train"]["seq_len"]
    data = args.data or state.get("data", {}).get("dir")
    batches, prov = source_batches(model, args.source, data, args.sequences, seq_len, model.cfg.vocab_size,
                                   seed=args.seed, temperature=args.temperature)
    r = calibrate(model, batches, prov, args.run)
    if args.source == "train":
        print("pgolf: note: calibration on training data counts inside the training cap in the contest; "
              f"it took {r['seconds']:.1f} s here", file=sys.stderr)
    _emit(args, r, lambda r: table([(k, v if not isinstance(v, list) else len(v)) for k, v in r.items()]))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pgolf.audit.stream import evaluate_recorded
    from pgolf.runtime import init_runtime, shutdown

    runtime = init_runtime(args.device)
    try:
        from pgolf.audit.run import recorded_verdict
        from pgolf.audit.verdict import verdict_line

        sets = list(args.set or []) + (["evaluation.sliding.legacy_tail=true"] if args.legacy_tail else [])
        r = evaluate_recorded(args.artifact, args.data, runtime, tokenizer=args.tokenizer, seq_len=args.seq_len,
                              limit=args.limit_tokens, methods=args.methods, overrides=sets,
                              time_budget=args.time_budget, strict_budget=args.strict_time_budget)
        r["audit"] = (recorded_verdict(args.artifact, r["method"].split(","))
                      or "not audited (run pgolf audit with the same --methods)")
    finally:
        shutdown()
    for w in r["warnings"]:
        print(f"pgolf: warning: {w}", file=sys.stderr)
    if runtime.is_main:
        def human(r: dict) -> str:
            rows = [(k, r[k]) for k in ("method", "val_loss", "val_bpb", "tokens", "bytes", "eval_seconds")]
            if r["illegal_methods"]:
                rows.insert(3, ("ILLEGAL (by design)", f"{', '.join(r['illegal_methods'])}: this val_bpb is for "
                                                      "study only, never a contest score"))
            audit = r["audit"]
            rows.append(("audit", audit if isinstance(audit, str) else verdict_line(audit)))
            if "stream_audit" in r:
                st = r["stream_audit"]
                rows.append(("whole-evaluation checks", f"{verdict_line(st)}: {st['samples']} sampled positions, "
                                                        f"{st['updates']:,} state updates over {st['targets']:,} targets"))
            for m in r["methods"]:
                opts = ", ".join(f"{k}={v}" for k, v in m.items() if k not in ("method", "role", "why_illegal"))
                rows.append((f"  {m['method']}", opts))
            return table(rows)

        _emit(args, r, human)
    return 0


def _val_scope(r: dict) -> str:
    limit = r["train"].get("val_tokens_scored_limit", 0)
    return f"first {limit:,} val tokens" if limit and limit < r["eval"]["tokens"] else "all val tokens"


def _run_rows(r: dict) -> list[tuple[str, Any]]:
    rows = [("preset", r["preset"]), ("data", r["data"]["dir"]), ("split", r["data"]["split"]),
            ("train steps", r["train"]["steps"]), ("train time (s)", r["train"]["train_time_ms"] / 1000),
            ("tokens/s", r["train"]["tokens_per_second"]),
            ("train loss (last step) / val loss (pre-quant)", f"{r['train']['train_loss']:.4f} / {r['train']['val_loss']:.4f}"),
            (f"val_bpb (pre-quant, {_val_scope(r)})", r["train"]["val_bpb"])]
    for e in r["evals"]:
        verdict = e.get("audit", "not audited")
        if e.get("flagged"):
            verdict += f" ({', '.join(e['flagged'])})"
        elif e.get("stream_flagged"):  # not audited on a window, but the scoring pass's own record flagged
            verdict += f"; whole evaluation flagged ({', '.join(e['stream_flagged'])})"
        label = f" {e['label']}" if e["label"] else ""
        rows.append((f"val_bpb [{e['methods']}] (roundtrip, {r['pack']['quant']})",
                     f"{e['val_bpb']:.4f}  audit: {verdict}{label}"))
    p = r["pack"]
    rows += [("code bytes", f"{p['code_bytes']:,} ({p['code_counted']})"), ("model bytes", p["model_bytes"]),
             ("total bytes", p["total_bytes"]), ("headroom", p["headroom_bytes"])]
    if r.get("export"):
        where = r["export"]["path"] if r["run_dir"] else "train_gpt.py in the temporary run dir"
        rows.append(("exported", f"{where} (requires: {', '.join(r['export']['requirements']) or '-'})"))
    rows += [(f"  stage: {s['stage']}", f"{s['seconds']:.1f} s  {s['produced']}") for s in r["stages"]]
    rows += [("total time (s)", r["total_seconds"]),
             ("run dir", r["run_dir"] or "(temporary; pass --out DIR to keep it)")]
    return rows


def _dry_run_rows(r: dict) -> list[tuple[str, Any]]:
    d, proj = r["dry_run"], r["projection"]
    rows = [("preset (dry run, full shape)", f"{r['preset']}: {d['params']:,} params")]
    rows += [(f"  stage: {s['stage']}", f"{s['seconds']:.1f} s  {s['produced']}") for s in r["stages"]]
    rows += [("bytes measured (dry-run weights)",
              f"{d['measured_total_bytes']:,} = {r['pack']['model_bytes']:,} model + {d['code_bytes']:,} code "
              f"({d['code_wrapper']}); {'fits' if d['measured_fits'] else 'does NOT fit'}, "
              f"headroom {d['measured_headroom_bytes']:+,}"
              + (f" (an upper bound: pergroup's groups coded by {', '.join(d['measured_pergroup_backends'])} only)"
                 if d.get("measured_pergroup_backends") else "")
              + (f" (an upper bound: layout {', '.join(d['measured_layouts'])} only)"
                 if d.get("measured_layouts") != d.get("preset_layouts") else ""))]
    rows += [(f"  projected {g}", f"{x['params']:,} params x {x['bytes_per_param']:.4f} B = {x['projected_bytes']:,} B "
              f"[{x['source']}]") for g, x in proj["groups"].items()]
    rows += [("bytes projected (trained weights)",
              f"{d['projected_total_bytes']:,}; {'fits' if d['projected_fits'] else 'does NOT fit'}, "
              f"headroom {d['projected_headroom_bytes']:+,}"),
             ("dry run seconds", d["seconds"])]
    return rows


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        from pgolf.job.dryrun import dry_run

        r = dry_run(_preset(args), data=args.data, tokenizer=args.tokenizer, out=args.out,
                    eval_tokens=args.dry_run_tokens, include_illegal=args.include_illegal,
                    strict_budget=args.strict_budget, progress=False if args.json else None)
        _emit(args, r, lambda r: table(_dry_run_rows(r)))
        return 0 if r["dry_run"]["projected_fits"] else 1
    from pgolf.job.run import run_main_job

    r = run_main_job(preset=_preset(args), data=args.data, tokenizer=args.tokenizer, out=args.out,
                     device=args.device, progress=False if args.json else None,
                     limit_val_tokens=args.limit_val_tokens, include_illegal=args.include_illegal,
                     strict_budget=args.strict_budget, audit_tokens=args.audit_tokens)
    if is_main_process():
        _emit(args, r, lambda r: table(_run_rows(r)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from pgolf.artifact.estimate import preset_info
    from pgolf.job.preset import load_preset

    from pgolf.plan.calibration import estimate_calibration
    from pgolf.plan.hardware import GPU_KINDS
    from pgolf.train.batch import rank_batch

    preset = load_preset(args.preset, args.set)
    r = preset_info(preset)
    try:
        b = rank_batch(preset.train, 8)
        r["rank_batch_at_8"] = {"micro_batches": b.micro_batches, "tokens": b.tokens, "rows": b.rows,
                                "row_tokens": b.row_tokens}
    except ConfigError as exc:
        r["rank_batch_at_8"] = {"error": str(exc)}
    cal = estimate_calibration(preset, GPU_KINDS["H100"])
    r["calibration_estimate_h100"] = cal.as_dict() if cal is not None else None

    def human(r: dict) -> str:
        rows = [("preset", r["preset"]), ("add-ons", ", ".join(r["addons"]) or "-")]
        rows += [(f"  params: {g}", n) for g, n in sorted(r["params_per_group"].items())]
        rows.append(("params total", r["params_total"]))
        rows.append(("  by role", ", ".join(f"{role} {n:,}" for role, n in sorted(r["params_per_role"].items()))))
        if r["reported_params"]:
            rows.append(("reported by the seed", f"{int(r['reported_params']):,} ({r['reference_source']})"))
            rows.append(("difference", f"{r['params_difference']:+,}"))
        pk = r["pack"]
        rows.append(("pack", f"{pk['quant']}, embedding int{pk['embedding_bits']}, {'/'.join(pk['compressors'])}, "
                             f"code {pk['code_wrapper']}"))
        proj = r["projection"]
        rows += [(f"  projected {g}", f"{x['projected_bytes']:,} B ({x['bytes_per_param']:.4f} B/param)")
                 for g, x in proj["groups"].items()]
        rows += [("B/param source", proj["source"]),
                 ("projected model bytes (trained)", r["estimated_model_bytes"]),
                 ("code bytes", f"{r['code_bytes']:,} ({proj['code_counted']})"),
                 ("projected total", r["estimated_total_bytes"]),
                 ("projected headroom", r["estimated_headroom_bytes"])]
        b = r["rank_batch_at_8"]
        rows.append(("per GPU on 8 GPUs", b.get("error") or
                     f"{b['micro_batches']} micro-batch(es) of {b['tokens']:,} tokens a step "
                     f"({b['rows']} row(s) of {b['row_tokens']:,})"))
        c = r["calibration_estimate_h100"]
        if c is not None:
            rows.append(("GPTQ calibration (H100, estimated)",
                         f"{c['sequences']:,} x {c['seq_len']} {c['source']}: {c['seconds']:.1f} s of the "
                         f"{c['reserve_seconds']:g} s reserve ({'fits' if c['fits'] else 'does NOT fit'})"))
        return table(rows)

    _emit(args, r, human)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from pgolf.audit.run import audit_artifact
    from pgolf.audit.verdict import verdict_line
    from pgolf.runtime import init_runtime

    runtime = init_runtime(args.device)
    r = audit_artifact(args.artifact, args.data, runtime, args.methods, args.set, args.tokenizer,
                       limit=args.limit_tokens, cuts=args.cuts, probe_positions=args.probe_positions,
                       stream_tokens=args.stream_tokens)

    def human(r: dict) -> str:
        rows = [("methods", ",".join(r["methods"])), ("window (targets)", r["tokens"]), ("seconds", r["seconds"])]
        rows += [(f"{'PASS' if c['passed'] else 'FLAG'}  {c['name']}", c["detail"]) for c in r["checks"]]
        if r.get("stream"):
            st = r["stream"]
            rows.append(("whole evaluation", f"{st['targets']:,} targets, {st['samples']} sampled positions, "
                                             f"{st['updates']:,} updates, {st.get('seconds', 0):.1f} s"))
            rows += [(f"{'PASS' if c['passed'] else 'FLAG'}  {c['name']} (whole evaluation)", c["detail"])
                     for c in st["checks"]]
        rows.append(("verdict", verdict_line(r)))
        return table(rows)

    _emit(args, r, human)
    return 1 if r["flagged"] else 0


def cmd_seeds(args: argparse.Namespace) -> int:
    from pgolf.submit.seeds import parse_seeds, run_seeds

    results = run_seeds(_preset(args), parse_seeds(args.seeds), args.data, args.out, args.tokenizer, args.device,
                        args.limit_val_tokens, progress=False if args.json else None)
    if not is_main_process():
        return 0  # under torchrun only rank 0 reports
    rows = [{"seed": r.get("seed"), "val_loss": r["eval"]["val_loss"], "val_bpb": r["eval"]["val_bpb"],
             "total_bytes": r["pack"]["total_bytes"]} for r in results]
    _emit(args, {"out": str(args.out), "seeds": rows},
          lambda r: table([(f"seed {x['seed']}", f"val_loss {x['val_loss']:.5f}  val_bpb {x['val_bpb']:.5f}  "
                                                  f"bytes {x['total_bytes']:,}") for x in r["seeds"]]))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pgolf.review.run import check_submission, report

    r = check_submission(args.path, data=args.data, tokenizer=args.tokenizer, against=args.against,
                         strict=args.strict, max_overlap=args.max_overlap)
    _emit(args, {k: v for k, v in r.items() if not k.startswith("_")}, lambda _: report(r))
    return 1 if r["failed"] else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from pgolf.submit.compare import compare, load_run

    r = compare([load_run(p) for p in args.runs], args.against_loss, args.against_bpb,
                [load_run(p) for p in args.against] if args.against else None)

    def human(r: dict) -> str:
        rows = [(f"  {Path(x['run']).name}", f"val_loss {x['val_loss']:.5f}  val_bpb {x['val_bpb']:.5f}") for x in r["runs"]]
        rows += [("runs", r["n"]), ("mean val_loss", f"{r['mean_val_loss']:.5f} ± {r['std_val_loss']:.5f} (std)"),
                 ("mean val_bpb", f"{r['mean_val_bpb']:.5f}"), ("reference val_loss", f"{r['reference_val_loss']:.5f}"),
                 ("mean gain", f"{r['mean_gain_nats']:+.5f} nats (rule: >= 0.005)"), ("test", r["test"]),
                 ("t, p", f"{r['t']:.3f}, {r['p_value']:.3g}")]
        rows += [("note", n) for n in r["notes"]]
        return table(rows) + "\n" + r["verdict"]

    _emit(args, r, human)
    return 0 if r["significant"] else 1


def cmd_submit(args: argparse.Namespace) -> int:
    from pgolf.submit.compare import compare, load_run
    from pgolf.submit.records import submit

    significance = None
    if args.against_loss is not None or args.against_bpb is not None:
        significance = compare([load_run(p) for p in args.runs], args.against_loss, args.against_bpb)
    r = submit(args.runs, args.name, args.author, args.github_id, args.track, args.out, args.blurb or "",
               significance)
    _emit(args, r, lambda r: table([("folder", r["folder"]), ("files", ", ".join(r["files"])),
                                    ("val_bpb (mean)", f"{r['submission']['val_bpb']:.5f}"),
                                    ("bytes total", r["submission"]["bytes_total"]),
                                    *[("not a record", p) for p in r["problems"]]]))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pgolf.submit.report import write_report, write_sweep_report
    from pgolf.sweep.worker import SWEEP_RECORD

    if (args.run / SWEEP_RECORD).is_file():
        out = write_sweep_report(args.run, args.out)
    else:
        out = write_report(args.run, args.out, args.evals)
    _emit(args, {"report": str(out)}, lambda r: f"wrote {r['report']}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from pgolf.sweep.space import load_sweep

    if args.report_only:
        from pgolf.sweep.report import write_outputs

        r = write_outputs(args.out)
    else:
        if args.space is None or args.data is None:
            raise PgolfError("pgolf sweep needs SPACE.toml and --data DIR (the shards every trial trains and scores on)")
        from pgolf.sweep.worker import run_sweep

        sweep = load_sweep(args.space, args.set, args.base)
        info = run_sweep(sweep, args.out, args.data, tokenizer=args.tokenizer, storage=args.storage,
                         device=args.device, heartbeat=args.heartbeat, grace=args.grace,
                         requeue_after=args.requeue_stale)
        if not info or args.worker:  # torchrun's other ranks, or a worker that leaves the report to others
            return 0
        from pgolf.sweep.report import write_outputs

        r = write_outputs(args.out)

    def human(r: dict) -> str:
        rows = [(f"trial {t['number']}", f"{t['state']:<8} " + (f"{t['val_bpb']:.4f}  " if t["val_bpb"] is not None
                                                               else "-       ") + (" ".join(t["overrides"]) or "(base)")
                 + (f"  [{t['note']}]" if t["note"] else "")) for t in r["trials"]]
        if "best" in r:
            rows += [("best", f"trial {r['best']['number']}: val_bpb {r['best']['val_bpb']:.4f}"),
                     ("best overrides", " ".join(r["best"]["overrides"]) or "(base preset)"),
                     ("best preset", r["best_preset"])]
        rows += [("plots", ", ".join(r["plots"]) or "-")]
        return table(rows)

    _emit(args, r, human)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from pgolf.job.preset import load_preset
    from pgolf.plan.hardware import parse_target
    from pgolf.plan.planner import plan_preset
    from pgolf.runtime import init_runtime

    target = parse_target(args.gpus)
    preset = load_preset(args.preset, args.set)
    runtime = init_runtime("cpu" if args.from_bench else args.device)
    plan, _ = plan_preset(preset, target, runtime, data=args.data, from_bench=args.from_bench,
                          steps=args.steps, eval_tokens=args.eval_tokens, val_tokens=args.val_tokens)
    r = plan.as_dict()

    def human(r: dict) -> str:
        rows = [("preset", r["preset"]), ("target", r["target"]), ("measured on", r["measured_on"]),
                ("ms/step (projected)", f"{r['step_ms']:.2f} = {r['compute_ms']:.2f} compute + {r['comm_ms']:.2f} collectives"),
                ("steps in the cap", r["steps_in_cap"]), ("tokens trained", r["tokens_trained"]),
                ("MFU (measured device)", f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"),
                ("peak memory / GPU", f"{r['peak_memory_gib']:.1f} GiB" if r["peak_memory_gib"] else "-")]
        rows += [(f"eval {m}", f"{sec:.1f} s") for m, sec in r["eval_seconds"].items()]
        out = table(rows) + "\n" + "\n".join(f"- {v}" for v in r["verdicts"])
        if not r["fits"]:
            return out + "\nverdict: does NOT fit"
        return out + ("\nverdict: fits" if r["eval_timed"] else
                      "\nverdict: training fits; the evaluation pipeline is not timed, so its fit is unknown")

    _emit(args, r, human)
    return 0 if plan.fits else 1


# ----------------------------------------------------------------------------- parser
# Arguments several commands share, each declared once.
def add_json(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return sp


def add_preset(sp: argparse.ArgumentParser, default: str | None = None, positional: bool = False) -> None:
    """How a command names its preset: positionally when the preset is what the command is about
    (info, export, plan), else `--preset` (train, run, seeds); overrides with `--set` either way."""
    what = "built-in preset name or path to a TOML file"
    if positional:
        sp.add_argument("preset", help=what)
    else:
        sp.add_argument("--preset", default=default, required=default is None,
                        help=what + (f" (default {default})" if default else ""))
    add_overrides(sp, "override a preset value, e.g. train.seq_len=512 (repeatable)")


def add_overrides(sp: argparse.ArgumentParser, help: str, default=None) -> None:
    sp.add_argument("--set", action="append", default=default, metavar="SECTION.KEY=VALUE", help=help)


def add_tokenizer(sp: argparse.ArgumentParser, where: str = "DATA") -> None:
    sp.add_argument("--tokenizer", help=f"SentencePiece .model (default {where}/tokenizer.model)")


def add_data(sp: argparse.ArgumentParser, help: str, required: bool = False) -> None:
    sp.add_argument("--data", type=Path, required=required, help=help)


def add_out(sp: argparse.ArgumentParser, help: str, required: bool = False, default: Path | None = None) -> None:
    sp.add_argument("--out", type=Path, required=required, default=default, help=help)


def add_device(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")


def add_strict_budget(sp: argparse.ArgumentParser) -> None:
    """`--strict-budget` means one thing wherever it appears: the preset's projected artifact bytes
    over the budget stop the command before training, instead of a warning."""
    sp.add_argument("--strict-budget", action="store_true",
                    help="stop before training when the projected bytes exceed the budget (default: warn)")


def add_training(sp: argparse.ArgumentParser, default_preset: str | None) -> None:
    """What every command that trains takes: its preset, a wallclock cap, the device."""
    add_preset(sp, default_preset)
    sp.add_argument("--budget-seconds", type=float, help="training wallclock cap (train.max_wallclock_seconds)")
    add_device(sp)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgolf", description="Parameter golf: train, pack and evaluate "
                                "byte-budgeted language models scored in bits per byte.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="build, fetch and inspect token shards")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    b = add_json(dsub.add_parser("build", help="text corpus -> tokenizer -> contest-format shards"))
    b.add_argument("inputs", nargs="+", help="JSONL files (field 'text'), plain text files, or folders")
    add_out(b, "output directory for shards and manifest.json", required=True)
    b.add_argument("--tokenizer", help="SentencePiece .model to load")
    b.add_argument("--vocab-size", type=int, help="train a BPE tokenizer of this size instead")
    b.add_argument("--no-byte-fallback", action="store_true",
                   help="train without byte fallback (as the contest's SP-1024 model); unknown characters become <unk>")
    split = b.add_mutually_exclusive_group(required=True)
    split.add_argument("--val-docs", type=int, help="the first K documents are validation (the contest's rule)")
    split.add_argument("--val-fraction", type=float, help="the last fraction F of each file's documents are validation")
    b.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard (default 100M)")
    b.add_argument("--transform", choices=["caseops"],
                   help="text transform before tokenizing; bpb is then charged on the original bytes "
                        "through a per-token byte sidecar")
    b.add_argument("--workers", type=int, default=0,
                   help="processes that tokenize (default 0: one per core); the shards are the same for any number")
    b.add_argument("--max-train-docs", type=int,
                   help="stop after this many training documents (with --val-docs; the contest's 15 M documents "
                        "hold far more tokens than a 10-minute run reads)")
    b.add_argument("--keep-overlap", action="store_true",
                   help="write training documents that hold (most of) a validation document anyway "
                        "(default: left out, counted in the manifest; pgolf check would flag them)")
    b.set_defaults(func=cmd_data_build)

    f = add_json(dsub.add_parser("fetch", help="download the contest's FineWeb shards from the Hugging Face hub"))
    add_out(f, "download root (default ./data)", default=Path("data"))
    f.add_argument("--variant", default="sp1024", help="sp1024 or sp8192 (default sp1024)")
    f.add_argument("--train-shards", type=int, default=80, help="training shards to fetch (default 80)")
    f.add_argument("--with-docs", action="store_true",
                   help="also fetch the selected documents as text (docs_selected.jsonl, ~45 GiB; the first "
                        "50,000 are validation), the input of `data build --transform caseops`")
    f.add_argument("--mirror", type=Path, help="a local directory laid out like the dataset repo")
    f.set_defaults(func=cmd_data_fetch)

    s = add_json(dsub.add_parser("stats", help="tokens, documents and counted bytes per split"))
    s.add_argument("dir", type=Path, help="shard directory")
    add_tokenizer(s, "DIR")
    s.set_defaults(func=cmd_data_stats)

    t = add_json(sub.add_parser("train", help="train a preset on token shards (torchrun-aware)"))
    add_training(t, "cpu-mini")
    add_data(t, "shard directory (required unless --resume)")
    add_tokenizer(t)
    add_out(t, "run directory (checkpoint, logs)")
    add_strict_budget(t)
    t.add_argument("--resume", type=Path, metavar="RUN",
                   help="continue RUN from its last resume state (preset and data as recorded there)")
    t.set_defaults(func=cmd_train)

    k = add_json(sub.add_parser("pack", help="quantize + compress a run into an artifact; account bytes"))
    k.add_argument("run", type=Path, help="run directory written by train/run")
    add_out(k, "artifact path (default RUN/model.pgolf)")
    k.add_argument("--quant", help="quantizer (default: the preset's)")
    k.add_argument("--compressor", help="zlib, lzma, zstd, brotli, or best (try all, keep the smallest); "
                   "default: the preset's")
    k.add_argument("--budget", type=int, help="byte budget (default: the preset's, 16,000,000)")
    k.add_argument("--allow-over-budget", action="store_true", help="keep an artifact over budget")
    k.set_defaults(func=cmd_pack)

    x = add_json(sub.add_parser("export", help="write the single-file train_gpt.py a submission needs"))
    add_preset(x, positional=True)
    add_out(x, f"where the file goes (default ./{SCRIPT_FILE})", default=Path(SCRIPT_FILE))
    x.add_argument("--wrapper", choices=CODE_WRAPPERS,
                   help="how the file is shipped (default: the preset's pack.code_wrapper)")
    x.add_argument("--minify", action="store_true", help="shrink with python-minifier")
    x.add_argument("--lzma", action="store_true", help="wrap in a self-extracting lzma stub")
    x.set_defaults(func=cmd_export)

    c = add_json(sub.add_parser("calibrate", help="collect GPTQ Hessians for a run (training data or self-generated)"))
    c.add_argument("run", type=Path, help="run directory written by train/run")
    c.add_argument("--source", choices=list(CALIBRATION_SOURCES), default="train",
                   help="training shards (default) or sequences the model generates itself; never validation")
    add_data(c, "training shard directory (default: the run's)")
    c.add_argument("--sequences", type=int, default=64, help="calibration sequences (default 64)")
    c.add_argument("--seq-len", type=int, help="calibration sequence length (default: the run's)")
    c.add_argument("--temperature", type=float, default=0.8, help="sampling temperature for --source self")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=cmd_calibrate)

    e = add_json(sub.add_parser("eval", help="score an artifact's round-tripped model on validation"))
    e.add_argument("artifact", type=Path)
    add_data(e, "shard directory", required=True)
    add_tokenizer(e)
    e.add_argument("--seq-len", type=int, help="evaluation sequence length (default: the preset's)")
    e.add_argument("--limit-tokens", type=int, default=0, help="score at most this many tokens (0 = all)")
    e.add_argument("--methods", default="standard",
                   help="comma-separated: standard, sliding, ttt, slot, slot-causal, hedge, hedge-flattened, hedge-normalized "
                        "(and the illegal-* fixtures); 'preset' = the preset's own list (default standard)")
    add_overrides(e, "override a method option, e.g. evaluation.sliding.stride=32 (repeatable)")
    e.add_argument("--legacy-tail", action="store_true",
                   help="sliding: re-score the final stride in every tail window, as the records did")
    e.add_argument("--time-budget", type=float, default=0.0, help="eval seconds allowed (warn when projected over)")
    e.add_argument("--strict-time-budget", action="store_true",
                   help="stop instead of warning when the evaluation is projected over --time-budget")
    add_device(e)
    e.set_defaults(func=cmd_eval)

    i = add_json(sub.add_parser("info", help="parameters per group and estimated artifact bytes of a preset"))
    add_preset(i, positional=True)
    i.set_defaults(func=cmd_info)

    sd = add_json(sub.add_parser("seeds", help="train + pack + eval one preset for several seeds (resumable)"))
    add_training(sd, None)
    sd.add_argument("--seeds", default="42,1337,2024", help="comma-separated seeds (default 42,1337,2024)")
    add_data(sd, "shard directory (default: the embedded corpus)")
    add_tokenizer(sd)
    add_out(sd, "directory for the seed_<n>/ run directories", required=True)
    sd.add_argument("--limit-val-tokens", type=int, default=0, help="score only the first N val tokens (0 = all)")
    sd.set_defaults(func=cmd_seeds)

    cp = add_json(sub.add_parser("compare", help="the contest's significance test of runs against a record"))
    cp.add_argument("runs", nargs="+", type=Path, help="run directories (pgolf run --out / pgolf seeds)")
    cp.add_argument("--against-loss", type=float, help="the record's mean val_loss (nats)")
    cp.add_argument("--against-bpb", type=float, help="the record's val_bpb (converted with the runs' bytes/token)")
    cp.add_argument("--against", nargs="+", type=Path, help="reference run directories instead of a number")
    cp.set_defaults(func=cmd_compare)

    ck = add_json(sub.add_parser("check", help="verify a records folder, run directory or log as the reviewers did"))
    ck.add_argument("path", type=Path, help="a records folder, a pgolf run directory (or pgolf seeds --out), or a log")
    add_data(ck, "the shards it trained and scored on: scan training for validation documents, recount the bytes")
    add_tokenizer(ck)
    ck.add_argument("--against", nargs="+", type=Path, default=[],
                    help="earlier records folders to test significance against (README rule and reviewers' rule)")
    ck.add_argument("--strict", action="store_true",
                    help="fail on suspect findings too (practices the reviewers accepted that a strict reading rejects)")
    ck.add_argument("--max-overlap", type=float,
                    help="share of validation documents found in training above which it is flagged (default 0.01)")
    ck.set_defaults(func=cmd_check)

    sb = add_json(sub.add_parser("submit", help="write a records folder in the contest's layout"))
    sb.add_argument("runs", nargs="+", type=Path, help="seed run directories")
    sb.add_argument("--name", required=True)
    sb.add_argument("--author", required=True)
    sb.add_argument("--github-id", required=True)
    sb.add_argument("--track", default="10min_16mb", help="10min_16mb (record) or non_record_16mb")
    sb.add_argument("--blurb", help="one-line description")
    add_out(sb, "where records/ goes (default .)", default=Path("."))
    sb.add_argument("--against-loss", type=float, help="record to beat (val_loss), for the significance line")
    sb.add_argument("--against-bpb", type=float, help="record to beat (val_bpb)")
    sb.set_defaults(func=cmd_submit)

    sw = add_json(sub.add_parser("sweep", help="hyperparameter search over preset keys (Optuna; one machine or many)"))
    sw.add_argument("space", type=Path, nargs="?", help="sweep TOML: base preset, budget, search space")
    add_out(sw, "sweep directory (trials, study.db, best.toml, plots)", required=True)
    add_data(sw, "shard directory every trial trains and scores on")
    add_tokenizer(sw)
    sw.add_argument("--storage", help="shared study storage: an SQLAlchemy URL (postgresql://...) or "
                                      "journal:/shared/path.log (default: sqlite OUT/study.db)")
    sw.add_argument("--worker", action="store_true", help="join the study, run trials, leave the report to others")
    sw.add_argument("--report-only", action="store_true", help="write trials.json, best.toml and plots, run nothing")
    add_device(sw)
    add_overrides(sw, "extra fixed override (repeatable)", default=[])
    sw.add_argument("--base", help="the preset the search starts from, instead of the file's (the same search on "
                                   "another base; its own study)")
    sw.add_argument("--heartbeat", type=int, default=30, help=argparse.SUPPRESS)
    sw.add_argument("--grace", type=int, default=120, help=argparse.SUPPRESS)
    sw.add_argument("--requeue-stale", type=float, default=0.0, metavar="SECONDS",
                    help="journal storage: re-queue RUNNING trials started more than SECONDS ago (dead workers)")
    sw.set_defaults(func=cmd_sweep)

    rp = add_json(sub.add_parser("report", help="an offline HTML page with a run's plots and tables"))
    rp.add_argument("run", type=Path)
    add_out(rp, "HTML file (default RUN/report.html)")
    rp.add_argument("--evals", type=Path, help="eval-methods JSON (benchmarks/eval_methods.py --out) to add")
    rp.set_defaults(func=cmd_report)

    au = add_json(sub.add_parser("audit", help="check by experiment that an eval pipeline scores before it adapts"))
    au.add_argument("artifact", type=Path)
    add_data(au, "shard directory", required=True)
    add_tokenizer(au)
    au.add_argument("--methods", default="standard", help="comma-separated methods, or 'preset' (default standard)")
    add_overrides(au, "override a method option (repeatable)")
    au.add_argument("--limit-tokens", type=int, default=None,
                    help="window of the rerun checks, in validation tokens (default: the smallest >= 8192 that "
                         "sees every method adapt past its warm-up)")
    au.add_argument("--cuts", type=int, default=3,
                    help="cut points of the future-invariance check (one of them after the last state update)")
    au.add_argument("--probe-positions", type=int, default=2,
                    help="positions of the black-box normalization probe (every token id scored; 0 = skip)")
    au.add_argument("--stream-tokens", type=int, default=0,
                    help="validation tokens the whole-evaluation record covers (0 = all; -1 = skip)")
    add_device(au)
    au.set_defaults(func=cmd_audit)

    pl = add_json(sub.add_parser("plan", help="project a preset's training steps and eval seconds onto N GPUs"))
    add_preset(pl, positional=True)
    pl.add_argument("--gpus", default="8xH100", help="target machine, N x KIND (default 8xH100)")
    pl.add_argument("--from-bench", type=Path, help="read figures from benchmarks/gpu_throughput.py --json output "
                    "instead of measuring")
    add_data(pl, "shards to time on (default: build the embedded corpus)")
    pl.add_argument("--steps", type=int, default=20, help="training steps to time (default 20)")
    pl.add_argument("--eval-tokens", type=int, default=1 << 20, help="tokens each eval method is timed on")
    pl.add_argument("--val-tokens", type=int, default=62_021_632,
                    help="validation tokens on the target (default: FineWeb SP1024, 62,021,632)")
    add_device(pl)
    pl.set_defaults(func=cmd_plan)

    r = add_json(sub.add_parser("run", help="the main job: data -> train -> pack -> eval, on an embedded default"))
    add_training(r, "cpu-mini")
    add_data(r, "shard directory (default: build one from the text that ships with CPython)")
    add_tokenizer(r)
    add_out(r, "keep the run directory here")
    r.add_argument("--limit-val-tokens", type=int, default=0,
                   help="score only the first N validation tokens after packing (0 = all)")
    r.add_argument("--dry-run", action="store_true",
                   help="drive every stage with the full-shape model on a tiny token budget (CPU) and report "
                        "seconds per stage, measured and projected bytes")
    r.add_argument("--dry-run-tokens", type=int, default=2048, help="validation tokens the dry run scores (default 2048)")
    r.add_argument("--include-illegal", action="store_true",
                   help="also run the preset's methods that are illegal by design (labelled ILLEGAL)")
    add_strict_budget(r)
    r.add_argument("--audit-tokens", type=int, default=None,
                   help="window of each eval composition's audit, in validation tokens (0 = no audit; default: "
                        "the smallest >= 8192 that sees every method adapt)")
    r.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get("PGOLF_TEST_FAULT") or os.environ.get("PGOLF_TEST_KILL"):  # the fault tests only
        from pgolf.job.faults import install_fault_from_env

        install_fault_from_env(int(os.environ.get("RANK", "0")))
    try:
        return int(args.func(args) or 0)
    except PgolfError as exc:
        print(f"pgolf: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pgolf: {interrupted(args)}", file=sys.stderr)
        return 130


def interrupted(args) -> str:
    """One line for Ctrl-C: where the command was, what it kept (every file it wrote is whole: a
    write under way is dropped), and how to go on."""
    run = sys.modules.get("pgolf.job.run")
    stage = run.StageTimer.current if run is not None else None
    out = getattr(args, "resume", None) or getattr(args, "out", None)
    where = f" during {stage}" if stage else ""
    if not out or not Path(out).is_dir():
        return f"interrupted{where}; nothing was written"
    out = Path(out)
    kept = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    shown = ", ".join(kept[:4]) + (f" and {len(kept) - 4} more" if len(kept) > 4 else "")
    resume = next((p for p in (out / "resume.safetensors", out / "run" / "resume.safetensors") if p.is_file()), None)
    if resume is not None and args.command == "train":
        how = f"continue with: pgolf train --resume {resume.parent}"
    else:
        how = "run the same command again: it redoes what was cut off and rewrites what was kept identically"
    return f"interrupted{where}; kept in {out}: {shown or 'nothing'}; {how}"


if __name__ == "__main__":
    raise SystemExit(main())
