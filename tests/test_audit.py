"""The audit passes every legal method and flags each known-illegal one with the right check."""

from __future__ import annotations

import json

import pytest

from pgolf.audit.checks import audit_pipeline, provenance
from pgolf.cli import main
from pgolf.runtime import Runtime
from tests.test_eval_methods import OVERRIDES
from tests.test_windows_pipeline import _tiny

# the tilt's default order 16 finds no recurring context in random tokens: audited here backed off to
# order 2 (tests/test_ngram_tilt.py audits the default on a stream whose long contexts recur)
AUDIT_OVERRIDES = {**OVERRIDES, "illegal_ngram_target_key": {"chunk_tokens": 256},
                   "illegal_target_only_norm": {"chunk_tokens": 256}, "ngram_tilt": {"min_order": 2}}
LEGAL = [["standard"], ["sliding"], ["sliding", "ttt"], ["sliding", "slot-causal"], ["sliding", "hedge-normalized"],
         ["sliding", "ngram-tilt"]]
# method list, slot variant, the check that must flag it
ILLEGAL = [
    (["illegal-prequant-ttt", "sliding"], None, "score before adapt"),
    (["illegal-train-then-score-ttt", "sliding"], None, "score before adapt"),
    (["sliding", "slot"], "A", "future invariance"),
    (["standard", "slot"], "B", "future invariance"),
    (["sliding", "slot"], "C", "future invariance"),
    (["sliding", "illegal-ngram-target-key"], None, "normalization"),
    (["sliding", "illegal-target-only-norm"], None, "normalization"),
    (["sliding", "illegal-ngram-tilt-gated"], None, "normalization (black box)"),
    (["sliding", "hedge"], None, "normalization"),
]


def _audit(methods, variant=None, sharpen=1.0):
    import torch

    preset, model, tables, tokens = _tiny()
    with torch.no_grad():
        model.tok_emb.weight.mul_(sharpen)
    over = {k: dict(v) for k, v in AUDIT_OVERRIDES.items()}
    if variant:
        over["slot"]["variant"] = variant
    return audit_pipeline(model, tokens, tables, preset, Runtime(), methods, overrides=over, cuts=2)


@pytest.mark.parametrize("methods", LEGAL, ids=lambda m: "+".join(m))
def test_audit_passes_legal_methods(methods):
    r = _audit(methods)
    assert r["verdict"] == "pass", [c["detail"] for c in r["checks"] if not c["passed"]]


@pytest.mark.parametrize("methods,variant,check", ILLEGAL, ids=lambda x: x if isinstance(x, str) else None)
def test_audit_flags_known_illegal_methods(methods, variant, check):
    r = _audit(methods, variant, sharpen=300.0 if "hedge" in methods else 1.0)
    assert check in r["flagged"], r["checks"]
    flagged = next(c for c in r["checks"] if c["name"] == check)
    assert flagged["evidence"], "a flag must carry evidence"


def test_legacy_tail_is_flagged_by_single_pass():
    over = {k: dict(v) for k, v in AUDIT_OVERRIDES.items()}
    over["sliding"]["legacy_tail"] = True
    preset, model, tables, tokens = _tiny()
    r = audit_pipeline(model, tokens, tables, preset, Runtime(), ["sliding"], overrides=over, cuts=1)
    assert r["flagged"] == ["single pass"]


def test_provenance_flags_validation_reads():
    ok = provenance({"data": {"train_shards": ["d/fineweb_train_000000.bin"]}, "calibration": {"source": "train",
                     "shards": ["d/fineweb_train_000000.bin"]}})
    assert ok.passed
    assert not provenance({"data": {"train_shards": ["d/fineweb_val_000000.bin"]}}).passed
    assert not provenance({"data": {"train_shards": ["d/fineweb_train_000000.bin"]},
                           "calibration": {"source": "val"}}).passed


def test_audit_cli_records_verdict_and_eval_shows_it(capsys, tmp_path, tiny_data):
    from tests.test_cli import _sets

    run = tmp_path / "run"
    assert main(["train", "--preset", "cpu-mini", "--data", str(tiny_data), "--out", str(run), *_sets()]) == 0
    assert main(["pack", str(run)]) == 0
    art = run / "model.pgolf"
    capsys.readouterr()
    code = main(["audit", str(art), "--data", str(tiny_data), "--methods", "sliding", "--limit-tokens", "1024",
                 "--json", "--set", "evaluation.sliding.stride=16"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and r["verdict"] == "pass"
    assert main(["eval", str(art), "--data", str(tiny_data), "--methods", "sliding", "--limit-tokens", "1024",
                 "--json", "--set", "evaluation.sliding.stride=16"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["audit"]["verdict"] == "pass"
    # the scoring pass recorded its own checks over every scored target
    assert ev["stream_audit"]["verdict"] == "pass" and ev["stream_audit"]["targets"] == 1024
    assert {c["name"] for c in ev["stream_audit"]["checks"]} == {"score before adapt", "normalization",
                                                                  "scored = reported"}
    assert r["stream"]["verdict"] == "pass" and "window coverage" in {c["name"] for c in r["checks"]}
    code = main(["audit", str(art), "--data", str(tiny_data), "--methods", "sliding,slot", "--limit-tokens", "1024",
                 "--set", 'evaluation.slot.variant="C"', "--set", "evaluation.slot.lr_max=0.05"])
    assert code == 1 and "FLAG  future invariance" in capsys.readouterr().out
