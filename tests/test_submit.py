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
