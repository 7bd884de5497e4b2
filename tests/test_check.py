"""`pgolf check`: a clean pgolf submission passes every check; each crafted defect is flagged by
the right check and by no other; a folder in the contest's own log dialect reads as its numbers
say; and, where the #1855 record's folder is given (PGOLF_RECORD_1855), it comes out as the
reviewers judged it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pgolf.cli import main
from pgolf.review.run import check_submission

CHECKS = ["size", "train/val overlap", "byte accounting", "seeds", "timing", "legality"]


def statuses(result: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in result["checks"]}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Three audited seeds of the tiny preset on data with 20 validation documents, and the
    records folder `pgolf submit` writes of them."""
    from pgolf.data.build import build_shards
    from pgolf.data.corpus import pydoc_documents
    from pgolf.job.preset import load_preset
    from pgolf.submit.records import submit
    from pgolf.submit.seeds import run_seeds
    from tests.conftest import TINY_OVERRIDES, TINY_VOCAB, write_jsonl

    root = tmp_path_factory.mktemp("check")
    docs = pydoc_documents(target_chars=1500)[:200]
    build_shards([write_jsonl(root / "docs.jsonl", docs)], root / "data", vocab_size=TINY_VOCAB,
                 byte_fallback=False, val_fraction=0.1, progress=False)
    run_seeds(load_preset("cpu-mini", TINY_OVERRIDES), [1, 2, 3], root / "data", root / "seeds", progress=False)
    r = submit([root / "seeds" / f"seed_{s}" for s in (1, 2, 3)], "Clean Tiny", "A", "a", "10min_16mb", root / "rec",
               date="2026-12-01")
    return {"seeds": root / "seeds", "records": Path(r["folder"]), "data": root / "data", "root": root}


def copy_records(clean, tmp_path) -> Path:
    return Path(shutil.copytree(clean["records"], tmp_path / "records"))


def show(result: dict) -> None:
    """The table, in the test's output (`pytest -rP` prints it)."""
    from pgolf.review.run import report

    print(report(result))


def assert_only(result: dict, flagged: str) -> None:
    show(result)
    s = statuses(result)
    assert s[flagged] == "FLAG", result["checks"]
    assert {k: v for k, v in s.items() if k != flagged} == {k: "pass" for k in CHECKS if k != flagged}, s
    assert result["failed"]


def test_clean_pgolf_submission_passes_every_check(clean, capsys):
    for path in (clean["records"], clean["seeds"]):
        r = check_submission(path, data=clean["data"])
        show(r)
        assert statuses(r) == {k: "pass" for k in CHECKS}, r["checks"]
        assert not r["failed"]
    assert main(["check", str(clean["records"]), "--data", str(clean["data"])]) == 0
    out = capsys.readouterr().out
    assert "verdict: pass" in out and "build_byte_tables equals the canonical table" in out
    assert "0 found (0.00 %)" in out and "3 seeds of one configuration" in out
    assert main(["check", str(clean["records"]), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["verdict"] == "pass" and len(r["checks"]) == 6


def test_overlap_of_a_fifth_of_validation_is_flagged_on_the_data(clean, tmp_path):
    """Training shards that hold 20 % of the validation documents, half of them exact and half
    with one token in a hundred changed."""
    from pgolf.data.overlap import split_documents
    from pgolf.data.shards import list_shards, load_split, read_shard, write_shard

    data = Path(shutil.copytree(clean["data"], tmp_path / "data"))
    docs = split_documents(np.asarray(load_split(data, "val")), 1)
    assert len(docs) == 20
    copies = []
    for k, (_, doc) in enumerate(docs[:4]):
        doc = np.array(doc)
        if k % 2:
            doc[50::100] = (doc[50::100].astype(np.int64) + 1) % 250 + 4
        copies.append(doc)
    shard = list_shards(data, "train")[0]
    write_shard(shard, np.concatenate([np.asarray(read_shard(shard))] + copies))
    r = check_submission(clean["records"], data=data)
    assert_only(r, "train/val overlap")
    finding = next(c for c in r["checks"] if c["name"] == "train/val overlap")
    assert "4 found (20.00 %)" in finding["summary"]
    train_tokens = int(re.search(r"scanned ([\d,]+) training tokens", finding["summary"]).group(1).replace(",", ""))
    offsets = [int(m.group(1)) for e in finding["evidence"] for m in [re.search(r"fineweb_train_000000.bin:(\d+)", e)] if m]
    clean_size = train_tokens - sum(c.size for c in copies)
    assert len(offsets) == 4 and all(o >= clean_size for o in offsets)  # each located in its copy


def test_a_byte_table_off_by_one_on_one_token_is_flagged(clean, tmp_path):
    folder = copy_records(clean, tmp_path)
    script = folder / "train_gpt.py"
    text = script.read_text()
    assert text.count("    return ByteTables(base_bytes=base,") == 1
    script.write_text(text.replace("    return ByteTables(base_bytes=base,",
                                   "    base[40] += 1\n    return ByteTables(base_bytes=base,"))
    r = check_submission(folder, data=clean["data"])
    assert_only(r, "byte accounting")
    assert "token 40: bytes" in next(c for c in r["checks"] if c["name"] == "byte accounting")["summary"]


def _edit_eval_line(log: Path, edit) -> None:
    lines = log.read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("eval methods:"))
    lines[i] = edit(lines[i], lines, i)
    log.write_text("\n".join(lines) + "\n")


def test_a_log_that_scored_ninety_percent_is_flagged(clean, tmp_path):
    from pgolf.review.checks.accounting import canonical_bytes

    folder = copy_records(clean, tmp_path)
    per_target, _, _ = canonical_bytes(clean["data"], None)
    part = int(0.9 * per_target.size)
    _edit_eval_line(folder / "train_seed2.log", lambda line, *_: re.sub(
        r"bytes:\d+", f"bytes:{int(per_target[:part].sum())}", re.sub(r"tokens:\d+", f"tokens:{part}", line)))
    r = check_submission(folder, data=clean["data"])
    assert_only(r, "byte accounting")
    finding = next(c for c in r["checks"] if c["name"] == "byte accounting")
    assert any(f"scored {part:,} of {per_target.size:,}" in e for e in [finding["summary"], *finding["evidence"]])
    # without the data the log's own split size says the same
    assert statuses(check_submission(folder))["byte accounting"] == "FLAG"


def test_seeds_whose_logs_disagree_on_one_setting_are_flagged(clean, tmp_path):
    folder = copy_records(clean, tmp_path)
    log = folder / "train_seed3.log"
    text = log.read_text()
    assert text.count("  train.matrix_lr: 0.04\n") == 1
    log.write_text(text.replace("  train.matrix_lr: 0.04\n", "  train.matrix_lr: 0.05\n"))
    r = check_submission(folder, data=clean["data"])
    assert_only(r, "seeds")
    assert "train.matrix_lr = 0.05" in next(c for c in r["checks"] if c["name"] == "seeds")["summary"]


def test_an_eval_under_its_timer_but_over_the_wall_clock_is_flagged(clean, tmp_path):
    folder = copy_records(clean, tmp_path)

    def stretch(line: str, lines: list[str], i: int) -> str:
        end = dt.datetime.fromisoformat(re.search(r"time:(\S+)Z", line).group(1))
        start = (end - dt.timedelta(seconds=700)).isoformat(timespec="milliseconds") + "Z"
        lines[i - 1] = re.sub(r"time:\S+", f"time:{start}", lines[i - 1])
        return re.sub(r"eval_time:\d+ms", "eval_time:550000ms", line)

    _edit_eval_line(folder / "train_seed1.log", stretch)
    r = check_submission(folder, data=clean["data"])
    assert_only(r, "timing")
    summary = next(c for c in r["checks"] if c["name"] == "timing")["summary"]
    assert "700.0 s of wall clock" in summary and "550.0 s" in summary


# --------------------------------------------------------------------- the contest's own dialect

def contest_log(seed: int, shards: int = 80, train_ms: int = 590_000, eval_ms: int = 500_000,
                loss: float = 2.32, extra: dict | None = None) -> str:
    """A log in the shape the contest's record scripts print (as #1855's), with made-up numbers."""
    hyper = {"seed": seed, "caseops_enabled": True, "eval_seq_len": 2048, "gptq_reserve_seconds": 8.0,
             "matrix_lr": 0.026, "run_id": f"r{seed}", "val_doc_fraction": 1.0, "ttt_eval_batches": ""}
    hyper |= extra or {}
    bpb = loss * (47_851_520 / 151_073_604) / np.log(2)
    lines = ["Hyperparameters:", *[f"  {k}: {v}" for k, v in sorted(hyper.items())],
             f"train_shards: {shards}", "val_tokens: 47851520", "model_params:35945671",
             f"stopping_early: wallclock_cap train_time: {train_ms}ms step: 4900/20000",
             "GPTQ:collecting Hessians from calibration data...", "GPTQ:collected 67 Hessians in 4.7s",
             "Code size (uncompressed): 150000 bytes", "Code size (compressed): 32000 bytes",
             "Serialized model quantized+pergroup: 15860000 bytes", "Total submission size quantized+pergroup: 15892000 bytes",
             "Deserialize: decompression done in 20.0s", "ttt_lora:warming up compile (random tokens, no val data)",
             "ttt_lora:compile warmup done (60.0s)", "", "beginning TTT eval timer",
             "ttt_phased: total_docs:50000 prefix_docs:2500 suffix_docs:47500 num_phases:3",
             f"quantized_ttt_phased val_loss:{loss:.8f} val_bpb:{bpb:.8f} eval_time:{eval_ms}ms",
             f"total_eval_time:{eval_ms / 1000:.1f}s"]
    return "\n".join(lines) + "\n"


def contest_folder(path: Path, logs: dict[int, str], date: str = "2026-04-27") -> Path:
    path.mkdir(parents=True)
    for seed, text in logs.items():
        (path / f"train_seed{seed}.log").write_text(text)
    scores = [float(re.search(r"val_bpb:([\d.]+) eval", t).group(1)) for t in logs.values()]
    (path / "submission.json").write_text(json.dumps({"val_bpb": float(np.mean(scores)), "date": date,
                                                      "seeds": list(logs), "bytes_total": 15_892_000}))
    return path


def test_a_folder_in_the_contest_dialect_reads_as_its_numbers_say(tmp_path):
    ok = contest_folder(tmp_path / "ok", {s: contest_log(s, loss=2.32 + s * 1e-4) for s in (1, 2, 3)})
    r = check_submission(ok)
    assert statuses(r) == {"size": "pass", "train/val overlap": "pass", "byte accounting": "pass",
                           "seeds": "pass", "timing": "pass", "legality": "n/a"}, r["checks"]
    # #2130's fingerprint: a local CaseOps build with 1499 training shards
    leak = contest_folder(tmp_path / "leak", {s: contest_log(s, shards=1499 if s == 2 else 80) for s in (1, 2, 3)})
    assert statuses(check_submission(leak))["train/val overlap"] == "FLAG"
    # a wrong bytes denominator (#2138): the bpb of the loss over other bytes
    wrong = contest_log(1).replace("val_bpb:", "val_bpb:1").replace("val_bpb:11.", "val_bpb:1.1")
    assert statuses(check_submission(contest_folder(tmp_path / "den", {1: wrong})))["byte accounting"] == "FLAG"
    # a subset of validation (#1854): a fraction of the documents
    part = contest_folder(tmp_path / "part", {s: contest_log(s, extra={"val_doc_fraction": 0.5}) for s in (1, 2)})
    assert statuses(check_submission(part))["byte accounting"] == "FLAG"
    # a training timer over the cap, and calibration after a short reserve (suspect, FLAG when strict)
    late = contest_folder(tmp_path / "late", {1: contest_log(1, train_ms=601_000), 2: contest_log(2, train_ms=597_000)})
    assert statuses(check_submission(late))["timing"] == "FLAG"
    tight = contest_folder(tmp_path / "tight", {1: contest_log(1, train_ms=599_500), 2: contest_log(2, train_ms=599_400)})
    assert statuses(check_submission(tight))["timing"] == "suspect"
    assert not check_submission(tight)["failed"] and check_submission(tight, strict=True)["failed"]
    # a 688-s evaluation (#1972)
    slow = contest_folder(tmp_path / "slow", {1: contest_log(1, eval_ms=688_000), 2: contest_log(2)})
    assert statuses(check_submission(slow))["timing"] == "FLAG"


def test_significance_is_reported_by_both_rules(tmp_path):
    old = contest_folder(tmp_path / "old", {s: contest_log(s, loss=2.330 + s * 1e-4) for s in (1, 2, 3)}, "2026-04-01")
    new = contest_folder(tmp_path / "new", {s: contest_log(s, loss=2.328 + s * 1e-4) for s in (1, 2, 3)})
    seeds = next(c for c in check_submission(new, against=[old])["checks"] if c["name"] == "seeds")
    line = next(e for e in seeds["evidence"] if e.startswith("against old"))
    assert "gain 0.00200 nats" in line
    assert "README rule (>= 0.005 nats at p < 0.01): p = " in line and "not met;" in line
    assert re.search(r"reviewers' rule \(lower mean at p < 0.25\): p = [\d.e-]+, met \(2026-04-01 before 2026-04-27\)", line)


def test_reading_flags_known_illegal_patterns_as_suspect(tmp_path):
    folder = contest_folder(tmp_path / "f", {1: contest_log(1), 2: contest_log(2)})
    (folder / "train_gpt.py").write_text("def run():\n    for step in range(slot_steps):\n        pass\n"
                                         "def eval_val_ppm_d(x):\n    return x\n")
    legal = next(c for c in check_submission(folder)["checks"] if c["name"] == "legality")
    assert legal["status"] == "suspect" and len(legal["evidence"]) == 2
    assert any("train_gpt.py:2: SLOT" in e for e in legal["evidence"])


def test_check_says_what_is_wrong_with_its_input(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty")]) == 2
    assert "nothing to check" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("PGOLF_RECORD_1855"), reason="set PGOLF_RECORD_1855 to the #1855 records folder")
def test_the_1855_record_comes_out_as_the_reviewers_judged_it(tmp_path):
    folder = Path(shutil.copytree(os.environ["PGOLF_RECORD_1855"], tmp_path / "record-1855"))
    r = check_submission(folder)
    show(r)
    s = statuses(r)
    assert not r["failed"] and "FLAG" not in s.values(), r["checks"]
    assert s["seeds"] == "pass" and s["train/val overlap"] == "pass" and s["byte accounting"] == "pass"
    assert s["size"] in ("pass", "suspect") and s["timing"] in ("pass", "suspect")
    seeds = next(c for c in r["checks"] if c["name"] == "seeds")
    assert "3 seed(s) [0, 1234, 42]: val_bpb mean 1.06107587" in seeds["evidence"][0]
