"""`pgolf run`: the whole pipeline in one command — data → train → pack → eval → audit → export.

With no `--data` it needs no network and no files: it builds a corpus from the documentation
text that ships with CPython, trains a tokenizer of the preset's vocab on it, and uses the last
10% of documents as validation.

After packing it scores the round-tripped model with `standard` and with the preset's own legal
evaluation methods (`[evaluation].methods`), audits each composition and reports the verdict
beside its bpb. Methods illegal by design run only with `include_illegal`, and are labelled so.
Every stage is timed. `pgolf run --dry-run` (pgolf.job.dryrun) drives this same function with a
full-shape model and a tiny token budget.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from pgolf.artifact.estimate import projection
from pgolf.artifact.pack import pack_run
from pgolf.components import legal_methods
from pgolf.config import Preset
from pgolf.data.build import resolve_tokenizer
from pgolf.data.corpus import build_default_shards, describe_default_corpus
from pgolf.errors import BudgetError
from pgolf.audit.stream import evaluate_recorded
from pgolf.io import atomic_write_bytes, ensure_writable, write_json
from pgolf.runtime import Runtime, init_runtime, share_from_main
from pgolf.train.loop import train
from pgolf.train.runlog import RunLog, wall_stamp
from pgolf.rundir import RESULTS_FILE, RUN_SUBDIR, SCRIPT_FILE


class StageTimer:
    """Seconds and a one-line product for each stage, in order. `current` names the stage under way
    (what an interrupted run reports)."""

    current: str | None = None

    def __init__(self) -> None:
        self.stages: list[dict] = []

    @contextlib.contextmanager
    def stage(self, name: str):
        row = {"stage": name, "seconds": 0.0, "produced": ""}
        t0 = time.perf_counter()
        StageTimer.current = name
        try:
            yield row
        finally:
            row["seconds"] = time.perf_counter() - t0
            self.stages.append(row)
        StageTimer.current = None  # left set when the stage raised: the error is reported there


def check_projected_fit(preset: Preset, strict: bool, warn: bool = True) -> dict:
    """Warn before training when the preset's projected bytes exceed its budget (stop when strict;
    every rank stops, only the one with `warn` says so)."""
    proj = projection(preset)
    if not proj["fits"]:
        msg = (f"preset {preset.name}: projected {proj['total_bytes']:,} bytes for trained weights are over the "
               f"{proj['budget_bytes']:,}-byte budget by {-proj['headroom_bytes']:,} ({proj['source']})")
        if strict:
            raise BudgetError(msg + " (stopped by --strict-budget)")
        if warn:
            print(f"pgolf: warning: {msg}", file=sys.stderr)
    return proj


def eval_compositions(preset: Preset, include_illegal: bool) -> list[list[str]]:
    """`standard`, the preset's legal methods, and (when asked) its full list with the illegal ones."""
    names = preset.eval_methods
    legal = legal_methods(names)
    out = [["standard"]]
    if legal != ["standard"]:
        out.append(legal)
    if include_illegal and names != legal:
        out.append(names)
    return out


CPU_PROBE_MAX_PARAMS = 10_000_000


def default_probe_positions(model_params: int, runtime: Runtime) -> int:
    """The black-box probe scores every token id at each position (for SLOT, one fit per id): on a
    CPU that is affordable for CPU-sized models only; contest shapes on CPU (dry runs) skip it."""
    return 2 if runtime.device.type == "cuda" or model_params <= CPU_PROBE_MAX_PARAMS else 0


def evaluate_and_audit(artifact: Path, data: Path, tok: Path, preset: Preset, runtime: Runtime, timer: StageTimer,
                       include_illegal: bool, limit: int, audit_tokens: int | None,
                       probe_positions: int = 2, cuts: int = 3, log: RunLog | None = None) -> list[dict]:
    """`audit_tokens`: the audit's window (None: the smallest that sees every method adapt; 0: no audit).
    `log`: the run's train.log, which gets each evaluation's start and result lines (wall-stamped)."""
    from pgolf.audit.run import audit_artifact
    from pgolf.audit.verdict import verdict_line

    rows = []
    for methods in eval_compositions(preset, include_illegal):
        label = ",".join(methods)
        with timer.stage(f"eval {label}") as st:
            if log:
                log.line(f"eval_start methods:{label} time:{wall_stamp()}")
            r = evaluate_recorded(artifact, data, runtime, tokenizer=tok, limit=limit, methods=methods)
            st["produced"] = f"val_bpb {r['val_bpb']:.4f} on {r['tokens']:,} tokens"
            if log:
                log.line(f"eval methods:{label} val_loss:{r['val_loss']:.8f} val_bpb:{r['val_bpb']:.8f} "
                         f"tokens:{r['tokens']} bytes:{r['bytes']} eval_time:{1000 * r['eval_seconds']:.0f}ms "
                         f"setup_time:{1000 * r.get('setup_seconds', 0.0):.0f}ms "
                         f"load_time:{1000 * r.get('load_seconds', 0.0):.0f}ms "
                         f"legal_by_design:{all(m['legal_by_design'] for m in r['methods'])} time:{wall_stamp()}")
        legal = all(m["legal_by_design"] for m in r["methods"])
        row = {"methods": label, "val_bpb": r["val_bpb"], "val_loss": r["val_loss"], "tokens": r["tokens"],
               "eval_seconds": r["eval_seconds"], "legal_by_design": legal,
               "label": "" if legal else "ILLEGAL (by design; study only)", "result": r,
               "stream_audit": r["stream_audit"]["verdict"], "stream_flagged": r["stream_audit"]["flagged"]}
        if runtime.is_main and audit_tokens != 0:
            with timer.stage(f"audit {label}") as st:
                # one process audits; the audit reruns the pipeline on a window and needs no other rank;
                # the whole-evaluation record is the scoring pass's own, just made
                a = audit_artifact(artifact, data, Runtime(device=runtime.device), methods, tokenizer=tok,
                                   limit=audit_tokens, stream=r["stream_audit"], probe_positions=probe_positions,
                                   cuts=cuts)
                st["produced"] = verdict_line(a)
            row.update(audit=a["verdict"], flagged=a["flagged"], audit_tokens=a["tokens"])
            if log:
                log.line(f"audit methods:{label} verdict:{a['verdict']} tokens:{a['tokens']} time:{wall_stamp()}")
        rows.append(row)
    return rows


def run_main_job(preset: Preset, data: Path | None = None, tokenizer: str | None = None,
                 out: Path | None = None, device: str = "auto", progress: bool | None = None,
                 limit_val_tokens: int = 0, include_illegal: bool = False, strict_budget: bool = False,
                 audit_tokens: int | None = None, export: bool = True, fit_preset: Preset | None = None,
                 probe_positions: int | None = None, audit_cuts: int = 3,
                 pergroup_backends: list[str] | None = None, only_layouts: list[str] | None = None) -> dict:
    """`pergroup_backends`, `only_layouts`: pack's search narrowed (pgolf.artifact.pack). `fit_preset`: the preset whose projected bytes are checked before training (the dry run
    trains a shrunk copy of it). `audit_tokens`: the audit's window (None: the smallest that sees
    every method adapt; 0: no audit). `probe_positions`: positions of the black-box normalization
    probe (None: 2 on a GPU or for a CPU-sized model, else 0 — see `default_probe_positions`)."""
    t0 = time.perf_counter()
    timer = StageTimer()
    if out:
        ensure_writable(Path(out))  # before anything, a temporary directory included
    with tempfile.TemporaryDirectory(prefix="pgolf-run-") as tmp:
        work = Path(out) if out else Path(tmp)
        runtime = init_runtime(device)
        with timer.stage("projected bytes") as st:
            proj = check_projected_fit(fit_preset or preset, strict_budget, warn=runtime.is_main)
            st["produced"] = f"{proj['total_bytes']:,} B projected, headroom {proj['headroom_bytes']:+,}"
        with timer.stage("data") as st:
            if data is None:  # rank 0 builds the embedded corpus, the others read it (one node; give --data on several)
                built = build_default_shards(work, preset.model.vocab_size, progress) if runtime.is_main else None
                data = Path(share_from_main(str(built) if built else None, runtime))
                split = describe_default_corpus()
            else:
                split = "given shards (fineweb_val_* = validation)"
            tok = resolve_tokenizer(data, tokenizer)
            st["produced"] = str(data)
        run_dir = work / RUN_SUBDIR
        with timer.stage("train") as st:
            summary = train(preset, data, run_dir, runtime, tokenizer=tok, progress=progress)
            st["produced"] = (f"{summary['steps']} steps, {summary['model_params']:,} params, "
                              f"train loss {summary.get('train_loss', float('nan')):.4f}")
            if summary.get("calibration"):
                cal = summary["calibration"]
                st["produced"] += (f"; in-cap GPTQ calibration {cal['source']} {cal['sequences']} seqs "
                                   f"{cal['seconds']:.1f} s within_cap={cal.get('within_cap')}")
        # Under torchrun: rank 0 writes the checkpoint and packs; every rank then scores its share.
        with timer.stage("pack") as st:
            packed = pack_run(run_dir, allow_over_budget=True,
                              pergroup_backends=pergroup_backends, only_layouts=only_layouts) if runtime.is_main else None
            packed = share_from_main(packed, runtime)
            st["produced"] = (f"{packed['quant']} / {packed['compressor']} / {packed['layout']}: "
                              f"{packed['model_bytes']:,} B model + {packed['code_bytes']:,} B code")
            log = RunLog(run_dir, enabled=runtime.is_main, echo=False)  # the post-training lines of train.log
            log.line(f"pack quant:{packed['quant']} compressor:{packed['compressor']} model_bytes:{packed['model_bytes']} "
                     f"code_bytes:{packed['code_bytes']} total_bytes:{packed['total_bytes']} "
                     f"budget_bytes:{packed['budget_bytes']} time:{wall_stamp()}")
            if not packed["fits"] and runtime.is_main:
                print(f"pgolf: warning: the artifact is {packed['total_bytes']:,} bytes, over the "
                      f"{packed['budget_bytes']:,}-byte budget by {-packed['headroom_bytes']:,}: not submittable "
                      "(a lower pack bit width, pruning or a smaller model are the ways back)", file=sys.stderr)
        if probe_positions is None:
            probe_positions = default_probe_positions(summary["model_params"], runtime)
        try:
            rows = evaluate_and_audit(Path(packed["artifact"]), data, tok, preset, runtime, timer, include_illegal,
                                      limit_val_tokens, audit_tokens, probe_positions, audit_cuts, log)
        finally:
            log.close()
        exported = None
        if export and runtime.is_main:
            from pgolf.artifact.export import preset_requirements, submission_script

            with timer.stage("export") as st:
                script, wrapper = submission_script(preset)
                atomic_write_bytes(run_dir / SCRIPT_FILE, script.encode("utf-8"))
                compile(script, SCRIPT_FILE, "exec")  # the shipped file must at least be valid Python
                exported = {"path": str(run_dir / SCRIPT_FILE), "bytes": len(script.encode("utf-8")),
                            "wrapper": wrapper, "requirements": preset_requirements(preset)}
                st["produced"] = f"train_gpt.py {exported['bytes']:,} B ({wrapper})"
        primary = next((r for r in reversed(rows) if r["legal_by_design"]), rows[0])
        summary["tokens_per_second"] = summary["tokens_seen"] / max(summary["train_time_ms"] / 1000, 1e-9)
        result = {
            "preset": preset.name,
            "seed": preset.train.seed,
            "data": {"dir": str(data), "tokenizer": str(tok), "split": split},
            "train": summary,
            "pack": packed,
            "eval": primary["result"],
            "evals": [{k: v for k, v in r.items() if k != "result"} for r in rows],
            "projection": proj,
            "export": exported,
            "stages": timer.stages,
            "total_seconds": time.perf_counter() - t0,
            "run_dir": str(run_dir) if out else None,
        }
        if out and runtime.is_main:
            write_json(run_dir / RESULTS_FILE, json.loads(json.dumps(result, default=str)))
    return result
