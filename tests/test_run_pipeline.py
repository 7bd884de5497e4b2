"""`pgolf run` scores the preset's own evaluation methods, audits each composition and reports the
verdict beside its bpb; methods illegal by design run only when asked, and are labelled."""

import json

import pytest

from pgolf.job.preset import load_preset
from pgolf.job.run import eval_compositions, run_main_job
from tests.conftest import TINY_OVERRIDES

EVAL_SMALL = ["evaluation.sliding.seq_len=64", "evaluation.sliding.stride=32", "evaluation.ttt.chunk_tokens=512"]


def test_compositions_are_standard_then_the_legal_methods_then_on_request_all():
    p = load_preset("seed-1488-slot24")  # illegal-prequant-ttt, sliding, slot
    assert eval_compositions(p, include_illegal=False) == [["standard"], ["sliding"]]
    assert eval_compositions(p, include_illegal=True)[-1] == ["illegal-prequant-ttt", "sliding", "slot"]
    assert eval_compositions(load_preset("cpu-mini"), include_illegal=True) == [["standard"]]
    assert eval_compositions(load_preset("seed-1207-hydra"), include_illegal=False) == [["standard"]]


@pytest.mark.slow
def test_run_scores_and_audits_the_presets_own_pipeline(tmp_path, tiny_data):
    preset = load_preset("record-549-mini", TINY_OVERRIDES + EVAL_SMALL)
    r = run_main_job(preset, data=tiny_data, out=tmp_path / "r", device="cpu", progress=False,
                     limit_val_tokens=1024, audit_tokens=1024)
    assert [e["methods"] for e in r["evals"]] == ["standard", "sliding,ttt"]
    assert all(e["audit"] == "pass" and e["legal_by_design"] and not e["label"] for e in r["evals"])
    assert r["eval"]["method"] == "sliding,ttt"  # the submission's number is the preset's pipeline
    record = json.loads((tmp_path / "r" / "run" / "model.pgolf.audit.json").read_text())
    assert record["sliding,ttt"]["verdict"] == "pass"  # where pgolf submit looks for it
    saved = json.loads((tmp_path / "r" / "run" / "results.json").read_text())
    assert saved["evals"][1]["audit"] == "pass" and (tmp_path / "r" / "run" / "train_gpt.py").is_file()
    assert {s["stage"] for s in saved["stages"]} >= {"train", "pack", "eval sliding,ttt", "audit sliding,ttt", "export"}


@pytest.mark.slow
def test_illegal_methods_run_only_with_the_flag_and_are_labelled(tmp_path, tiny_data, capsys):
    from pgolf.cli import main
    from tests.test_cli import _sets

    sets = _sets(EVAL_SMALL + ["evaluation.sliding.stride=64", "evaluation.slot.steps=1",
                               "evaluation.prequant_ttt.epochs=1"])
    argv = ["run", "--preset", "seed-1488-slot24-mini", *sets, "--data", str(tiny_data),
            "--limit-val-tokens", "512", "--audit-tokens", "512", "--device", "cpu"]
    assert main(argv + ["--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert [e["methods"] for e in plain["evals"]] == ["standard", "sliding"]
    assert main(argv + ["--include-illegal", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "illegal-prequant-ttt,sliding,slot" in line)
    assert "ILLEGAL" in row and "audit:" in row
    saved = json.loads((tmp_path / "r" / "run" / "results.json").read_text())
    assert saved["evals"][-1]["label"].startswith("ILLEGAL") and saved["eval"]["method"] == "sliding"
    artifact = str(tmp_path / "r" / "run" / "model.pgolf")
    assert main(["eval", artifact, "--data", str(tiny_data), "--methods", "slot", *sets, "--limit-tokens", "256"]) == 0
    assert "ILLEGAL (by design)" in capsys.readouterr().out
    assert main(["eval", artifact, "--data", str(tiny_data), "--methods", "slot", *sets, "--limit-tokens", "256",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["illegal_methods"] == ["slot"] and r["legal_by_design"] is False


@pytest.mark.slow
def test_an_artifact_over_budget_is_reported_as_not_submittable(tmp_path, tiny_data, capsys):
    preset = load_preset("cpu-mini", TINY_OVERRIDES + ["pack.budget_bytes=200000"])
    r = run_main_job(preset, data=tiny_data, device="cpu", progress=False, limit_val_tokens=512, audit_tokens=0)
    err = capsys.readouterr().err
    assert not r["pack"]["fits"] and "not submittable" in err and "projected" in err  # warned before and after
