"""Multi-seed runs and the contest's significance test (checked against hand computations)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from pgolf.cli import main
from pgolf.errors import ConfigError, DataError
from pgolf.submit.compare import RunScore, compare, seeds_needed
from pgolf.submit.seeds import parse_seeds
from pathlib import Path


def _runs(losses, bpb_per_nat=1 / (math.log(2) * 2.4)):
    return [RunScore(f"r{i}", i, x, x * bpb_per_nat, 1000, 2400) for i, x in enumerate(losses)]


def test_one_sample_rule_matches_hand_computation():
    losses = [2.000, 2.002, 1.998]
    r = compare(_runs(losses), against_loss=2.02)
    mean, sd = np.mean(losses), np.std(losses, ddof=1)
    t = (mean - (2.02 - 0.005)) / (sd / math.sqrt(3))
    assert r["t"] == pytest.approx(t) and r["p_value"] == pytest.approx(stats.t.cdf(t, 2))
    assert r["significant"] and r["mean_gain_nats"] == pytest.approx(0.02)


def test_gain_below_margin_never_passes_and_says_so():
    r = compare(_runs([2.000, 2.0001, 1.9999]), against_loss=2.004)
    assert not r["significant"] and r["seeds_needed"] is None and "not above the 0.005 margin" in r["verdict"]


def test_noisy_runs_report_seeds_needed():
    r = compare(_runs([2.000, 2.010, 1.990]), against_loss=2.012)
    assert not r["significant"]
    n = r["seeds_needed"]
    assert n is not None and n > 3
    gain, sd = r["mean_gain_nats"], r["std_val_loss"]
    assert (gain - 0.005) / (sd / math.sqrt(n)) > stats.t.ppf(0.99, n - 1)
    assert (gain - 0.005) / (sd / math.sqrt(n - 1)) <= stats.t.ppf(0.99, n - 2)
    assert seeds_needed(0.01, 0.0) == 2


def test_welch_against_runs_and_bpb_conversion():
    new, ref = _runs([2.000, 2.001, 1.999, 2.000]), _runs([2.030, 2.020, 2.025])
    r = compare(new, against_runs=ref)
    expected = stats.ttest_ind([2.000, 2.001, 1.999, 2.000], np.array([2.030, 2.020, 2.025]) - 0.005,
                               equal_var=False, alternative="less")
    assert r["p_value"] == pytest.approx(expected.pvalue) and r["significant"]
    bpb = compare(new, against_bpb=2.02 / (math.log(2) * 2.4))
    assert bpb["reference_val_loss"] == pytest.approx(2.02) and bpb["notes"]


def test_compare_errors():
    with pytest.raises(DataError, match="at least 2"):
        compare(_runs([2.0]), against_loss=2.1)
    with pytest.raises(DataError, match="give a reference"):
        compare(_runs([2.0, 2.1]))
    with pytest.raises(ConfigError):
        parse_seeds("1,x")
    with pytest.raises(ConfigError):
        parse_seeds("1,1")
    assert parse_seeds("42, 1337,2024") == [42, 1337, 2024]


def test_compare_cli_reads_run_dirs(tmp_path, capsys):
    for i, loss in enumerate([2.000, 2.001, 1.999]):
        d = tmp_path / f"seed_{i}" / "run"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({"seed": i, "eval": {"val_loss": loss, "val_bpb": loss / 1.66,
                                                                          "tokens": 1000, "bytes": 2400}}))
    code = main(["compare", *[str(tmp_path / f"seed_{i}") for i in range(3)], "--against-loss", "2.02", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and r["significant"] and r["n"] == 3
    assert main(["compare", str(tmp_path / "seed_0"), str(tmp_path / "nope"), "--against-loss", "2"]) == 2
    assert "not a pgolf results file" in capsys.readouterr().err


def test_seeds_runs_each_seed_and_resumes(tmp_path, capsys, tiny_data):
    from tests.test_cli import _sets

    argv = ["seeds", "--preset", "cpu-mini", *_sets(), "--seeds", "1,2", "--data", str(tiny_data),
            "--out", str(tmp_path / "s"), "--limit-val-tokens", "512", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert [s["seed"] for s in first["seeds"]] == [1, 2]
    assert first["seeds"][0]["val_loss"] != first["seeds"][1]["val_loss"]
    assert main(argv) == 0  # everything done: skipped, same numbers
    out, err = capsys.readouterr()
    assert json.loads(out) == first and err.count("skipping") == 2


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, tiny_data):
    from pgolf.job.preset import load_preset
    from pgolf.submit.seeds import run_seeds
    from tests.conftest import TINY_OVERRIDES

    out = tmp_path_factory.mktemp("seeds")
    run_seeds(load_preset("cpu-mini", TINY_OVERRIDES), [3, 4], tiny_data, out, limit_val_tokens=512, progress=False,
              audit_tokens=0)  # left unaudited: the submit test audits them itself
    return out, tiny_data


def test_results_json_matches_its_schema(two_seeds):
    from pgolf.submit.schema import RESULTS_SCHEMA, validate

    out, _ = two_seeds
    for seed in (3, 4):
        validate(json.loads((out / f"seed_{seed}" / "run" / "results.json").read_text()), RESULTS_SCHEMA, "results")
    with pytest.raises(DataError, match="eval"):
        validate({"preset": "x", "train": {"steps": 1, "train_time_ms": 1, "val_loss": 1, "val_bpb": 1},
                  "pack": {"total_bytes": 1, "code_bytes": 1, "model_bytes": 1}}, RESULTS_SCHEMA, "results")


def test_submit_refuses_unaudited_record_then_writes_non_record_and_audited_record(two_seeds, tmp_path, capsys):
    from pgolf.submit.schema import SUBMISSION_SCHEMA, validate

    out, data = two_seeds
    runs = [str(out / "seed_3"), str(out / "seed_4")]
    base = ["submit", *runs, "--name", "Tiny Test", "--author", "A", "--github-id", "a", "--out", str(tmp_path)]
    assert main(base) == 2
    assert "not audited" in capsys.readouterr().err
    assert main(base + ["--track", "non_record_16mb", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    folder = tmp_path / "records" / "track_non_record_16mb"
    assert r["folder"].startswith(str(folder)) and r["folder"].endswith("_Tiny_Test")
    assert {"README.md", "submission.json", "train_gpt.py", "requirements.txt", "loss.png", "bytes.png",
            "train_seed3.log", "train_seed4.log"} <= set(r["files"])
    sub = json.loads((Path(r["folder"]) / "submission.json").read_text())
    validate(sub, SUBMISSION_SCHEMA, "submission.json")
    assert sub["bytes_code"] == (Path(r["folder"]) / "train_gpt.py").stat().st_size
    assert "Not a record submission" in (Path(r["folder"]) / "README.md").read_text()
    for run in runs:  # audit each seed's eval, then the record track is accepted
        assert main(["audit", f"{run}/run/model.pgolf", "--data", str(data), "--limit-tokens", "512"]) == 0
    capsys.readouterr()
    assert main(base + ["--against-loss", "0.5"]) == 2  # audited and in budget, but not significant
    assert "not significant" in capsys.readouterr().err
    assert main(base + ["--against-loss", "0.5", "--track", "non_record_16mb", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert any("not significant" in p for p in r["problems"])
    assert main(base + ["--against-loss", "9.0"]) == 0
    readme = next((tmp_path / "records" / "track_10min_16mb").iterdir()) / "README.md"
    text = readme.read_text()
    assert "| 3 |" in text and "| pass |" in text and "Significance" in text
    # the whole-evaluation record of each seed's scoring pass is its own column
    assert "whole-evaluation checks |" in text and "| pass | pass |" in text


def test_submission_schema_rejects_missing_fields():
    from pgolf.submit.schema import SUBMISSION_SCHEMA, validate

    with pytest.raises(DataError, match="github_id"):
        validate({"name": "x", "val_bpb": 1.0, "val_loss": 1.0, "bytes_total": 1, "bytes_code": 1, "blurb": "",
                  "author": "a", "date": "2026-01-01", "track": "10min_16mb", "seeds": [
                      {"seed": 1, "val_bpb": 1.0, "val_loss": 1.0, "bytes_total": 1}]}, SUBMISSION_SCHEMA, "s")


def test_report_is_one_offline_html_page(two_seeds, tmp_path, capsys):
    out, _ = two_seeds
    evals = tmp_path / "evals.json"
    evals.write_text(json.dumps({"rows": {"sliding": {"bpb": 3.1}, "sliding+ttt": {"bpb": 3.0}}}))
    assert main(["report", str(out / "seed_3"), "--out", str(tmp_path / "r.html"), "--evals", str(evals)]) == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "sliding+ttt" in page and "http" not in page.replace(
        "https://", "")
