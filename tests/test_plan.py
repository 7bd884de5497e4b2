"""The budget planner: projection arithmetic, the CLI from a recorded benchmark, CPU refusal,
and the one-rank timing emulation the measurement relies on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pgolf.cli import main
from pgolf.job.preset import load_preset
from pgolf.errors import ConfigError
from pgolf.plan.hardware import parse_target
from pgolf.plan.measure import per_rank_overrides
from pgolf.plan.project import project, ring_allreduce_ms
from pgolf.train.optim.muon import Muon

BENCH = Path(__file__).parent / "data" / "gpu-bench-naive.json"


def test_parse_target():
    t = parse_target("8xH100")
    assert t.gpus == 8 and t.kind.name == "H100" and t.label == "8xH100"
    assert parse_target(" 2 x h200 ").kind.memory_gib == 141
    for bad in ("H100", "0xH100", "8xTPU"):
        with pytest.raises(ConfigError, match="N x KIND"):
            parse_target(bad)


def test_ring_allreduce_cost():
    assert ring_allreduce_ms(1e9, 1, 100) == 0
    assert ring_allreduce_ms(1e9, 2, 100) == pytest.approx(10.0)  # 2·½·1 GB / 100 GB/s
    assert ring_allreduce_ms(1e9, 8, 100) == pytest.approx(17.5)


def _train_row(**over):
    row = {"device": "NVIDIA H100 80GB HBM3", "emulated_gpus": 8, "ms_per_step_per_gpu": 50.0,
           "tokens_per_step_per_gpu": 65536, "train_flops_per_token": 1e8, "grad_bytes": 0,
           "muon_update_bytes": 0, "peak_memory_bytes": 10 * 2**30}
    row.update(over)
    return row


def test_project_arithmetic_and_verdicts():
    preset = load_preset("naive-baseline")
    evals = {"standard": {"tokens_per_s_per_gpu": 1e6}, "sliding": {"tokens_per_s_per_gpu": 1e4}}
    plan = project(preset, parse_target("8xH100"), _train_row(), evals, ["standard"], val_tokens=80_000_000)
    assert plan.steps_in_cap == 600_000 // 50 and plan.tokens_trained == plan.steps_run * 524_288
    assert plan.mfu == pytest.approx(1e8 * 65536 / 0.05 / 989e12)
    assert plan.eval_seconds["standard"] == pytest.approx(10.0)
    assert plan.eval_seconds["sliding"] == pytest.approx(1000.0)
    assert plan.fits
    slow = project(preset, parse_target("8xH100"), _train_row(), evals, ["sliding"], val_tokens=80_000_000)
    assert not slow.fits and any("does NOT fit" in v for v in slow.verdicts)
    big = project(preset, parse_target("8xH100"), _train_row(peak_memory_bytes=90 * 2**30), evals, ["standard"])
    assert not big.fits and any("peak memory" in v for v in big.verdicts)
    cpu = project(preset, parse_target("8xH100"), _train_row(device="cpu"), evals, ["standard"])
    assert cpu.mfu is None and any("wrong by orders of magnitude" in v for v in cpu.verdicts)


def test_plan_cli_from_recorded_bench(capsys):
    code = main(["plan", "naive-baseline", "--gpus", "8xH100", "--from-bench", str(BENCH), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["fits"]
    row = json.loads(BENCH.read_text())["rows"]["naive-baseline"]["train"]
    assert out["compute_ms"] == pytest.approx(row["ms_per_step_per_gpu"])
    assert out["step_ms"] > out["compute_ms"]  # collectives added for 8 GPUs
    assert out["steps_in_cap"] == int(600_000 // out["step_ms"])
    code = main(["plan", "naive-baseline", "--from-bench", str(BENCH)])
    text = capsys.readouterr().out
    assert "verdict: fits" in text and "eval standard" in text


def test_plan_errors(capsys):
    assert main(["plan", "record-549", "--from-bench", str(BENCH)]) == 2
    assert "no row for preset 'record-549'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["plan", "naive-baseline", "--device", "cpu"]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err


def test_per_rank_overrides_split_the_batch():
    preset = load_preset("naive-baseline")
    assert per_rank_overrides(preset, 8) == ["train.tokens_per_step=65536", "train.grad_accum=1"]
    assert per_rank_overrides(preset, 2) == ["train.tokens_per_step=262144", "train.grad_accum=4"]
    with pytest.raises(ConfigError, match="does not split"):
        per_rank_overrides(preset, 3)


def test_muon_in_an_emulated_world_updates_only_rank0_share():
    from pgolf.plan.measure import emulated_world

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(8, 8)) for _ in range(4)]
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.randn(8, 8)
    opt = Muon(params, lr=0.1)
    with emulated_world(2):
        opt.step()
    assert not torch.distributed.is_initialized()  # the emulated group is gone afterwards
    changed = [not torch.equal(p, b) for p, b in zip(params, before)]
    assert changed == [True, False, True, False]


def test_calibration_estimate_counts_the_records_work_and_judges_the_reserve():
    """record-1855's 768 sequences: every hooked call of the looped model (17 virtual layers) in
    float64, Q/K/V's shared input once; 8x the sequences (what the preset once took) misses 8 s."""
    from pgolf.plan.calibration import calibration_work, estimate_calibration
    from pgolf.plan.hardware import GPU_KINDS

    preset = load_preset("record-1855")
    matmul, hessian, virtual = calibration_work(preset)
    assert virtual == 17
    d, h = 512, 2048
    per_call = 2 * (d * d + d * d + d * d + h * h)  # shared q/k/v input, attention out, MLP in, MLP out
    assert hessian == 17 * per_call + 2 * d * d
    est = estimate_calibration(preset, GPU_KINDS["H100"])
    assert est.sequences == 768 and est.forward_tokens == 768 * 2048 and est.fits
    eight_times = estimate_calibration(load_preset("record-1855", ["train.gptq_calibration_sequences=6144"]),
                                       GPU_KINDS["H100"])
    assert not eight_times.fits and eight_times.seconds > 7 * est.seconds
    plan = project(preset, parse_target("8xH100"), _train_row(), {}, ["standard"])
    assert any(v.startswith("GPTQ calibration (768 x 2048 train)") and v.endswith("fits") for v in plan.verdicts)
    slow = project(load_preset("record-1855", ["train.gptq_calibration_sequences=6144"]), parse_target("8xH100"),
                   _train_row(), {}, ["standard"])
    assert not slow.fits
    assert estimate_calibration(load_preset("naive-baseline"), GPU_KINDS["H100"]) is None
