"""Full-Hessian GPTQ against a plain sequential optimal-brain-surgeon reference."""

import pytest
import torch

from pgolf.quant.gptq import GPTQ
from pgolf.quant.rtn import rtn_matrix


def reference_obs(w, h, scale, qmax, damp=0.01):
    """Quantize columns left to right; after each, update the remaining columns with the
    Schur-complemented inverse Hessian (no Cholesky, no blocks, no reordering)."""
    w, h = w.double().clone(), h.double().clone()
    h += damp * h.diag().mean() * torch.eye(h.size(0), dtype=h.dtype)
    hinv = torch.linalg.inv(h)
    q = torch.zeros_like(w)
    s = scale.double()
    for j in range(w.size(1)):
        q[:, j] = torch.clamp(torch.round(w[:, j] / s), -qmax, qmax)
        err = (w[:, j] - q[:, j] * s) / hinv[j, j]
        w[:, j + 1 :] -= err[:, None] * hinv[j, j + 1 :][None, :]
        hinv = hinv - hinv[:, j : j + 1] @ hinv[j : j + 1, :] / hinv[j, j]
    return q


def _layer(rows=24, cols=40, n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cols, generator=g) @ torch.randn(cols, cols, generator=g) * 0.3  # correlated inputs
    w = torch.randn(rows, cols, generator=g) * 0.1
    gptq = GPTQ(cols)
    for chunk in x.split(100):
        gptq.add_batch(chunk)
    return w, x, gptq


def test_hessian_is_the_mean_of_x_xT():
    w, x, gptq = _layer()
    torch.testing.assert_close(gptq.hessian, (x.double().T @ x.double()) / x.size(0))


@pytest.mark.parametrize("block_size", [1, 7, 128])
def test_blocked_gptq_equals_sequential_obs(block_size):
    w, x, gptq = _layer()
    _, scale = rtn_matrix(w, 4)
    got = gptq.quantize(w, scale, bits=4, block_size=block_size, act_order="none")
    want = reference_obs(w, gptq.hessian, scale.float(), qmax=7)
    assert (got.double() != want).float().mean() < 0.01  # identical up to rare rounding ties


def test_gptq_lowers_the_output_error_compared_with_rtn():
    w, x, gptq = _layer(rows=64, cols=96, n=2000, seed=3)
    q_rtn, scale = rtn_matrix(w, 4)
    out_err = lambda q: ((x @ (q.float() * scale.float()[:, None]).T) - x @ w.T).square().mean()
    for order in ("none", "descending", "ascending"):
        q = gptq.quantize(w, scale, bits=4, act_order=order)
        assert q.abs().max() <= 7
        assert out_err(q) < 0.7 * out_err(q_rtn), order


def test_dead_columns_are_zeroed():
    w, x, _ = _layer()
    x[:, 5] = 0
    gptq = GPTQ(w.size(1))
    gptq.add_batch(x)
    _, scale = rtn_matrix(w, 6)
    q = gptq.quantize(w, scale, bits=6)
    assert not q[:, 5].any()


def test_calibrate_pack_and_eval_gptq_through_the_cli(capsys, tmp_path, tiny_data):
    import json

    from pgolf.cli import main
    from tests.test_cli import _sets

    run = tmp_path / "run"
    # d=256 so the MLP matrices (256x512) are above the keep-as-float size and get quantized
    assert main(["train", "--preset", "cpu-mini", "--data", str(tiny_data), "--out", str(run),
                 *_sets(["model.model_dim=256"])]) == 0
    # Validation data is refused, with the reason.
    code = main(["calibrate", str(run), "--data", str(tiny_data / "fineweb_val_000000.bin")])
    assert code == 2 and "may not read validation data" in capsys.readouterr().err
    # Without Hessians, gptq says what to run.
    assert main(["pack", str(run), "--quant", "gptq-int6"]) == 2
    assert "pgolf calibrate" in capsys.readouterr().err
    assert main(["calibrate", str(run), "--sequences", "4", "--json"]) == 0
    prov = json.loads(capsys.readouterr().out)
    assert prov["source"] == "train" and all("fineweb_train_" in s for s in prov["shards"])
    assert main(["pack", str(run), "--quant", "gptq-int6", "--json"]) == 0
    packed = json.loads(capsys.readouterr().out)
    assert packed["calibration"]["source"] == "train" and packed["calibration"]["seconds"] >= 0
    assert main(["eval", str(run / "model.pgolf"), "--data", str(tiny_data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["val_bpb"] > 0
    # Self-generated calibration reads no data at all.
    assert main(["calibrate", str(run), "--source", "self", "--sequences", "2", "--seq-len", "16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "self-generated"


def test_in_training_calibration_runs_inside_the_cap(tmp_path, tiny_data, tiny_preset):
    from pgolf.artifact.pack import pack_run
    from pgolf.runtime import Runtime
    from pgolf.train.loop import train

    preset = tiny_preset(["model.model_dim=256", "train.iterations=3", "train.max_wallclock_seconds=600",
                          "train.gptq_reserve_seconds=30", "train.gptq_calibration_sequences=4"])
    s = train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    cal = s["calibration"]
    assert cal["source"] == "train" and cal["within_cap"] is True and cal["layers"] > 0
    assert cal["train_time_ms_at_end"] <= s["train_time_ms"]  # calibration time is training time
    assert (tmp_path / "run" / "hessians.safetensors").is_file()
    packed = pack_run(tmp_path / "run", quant="gptq-int6")
    assert packed["calibration"]["within_cap"] is True
    assert "within_cap:True" in (tmp_path / "run" / "train.log").read_text()


def test_self_generated_calibration_runs_on_the_training_clock_and_packs_with_the_presets_gptq(
        tmp_path, tiny_data, tiny_preset):
    from pgolf.artifact.pack import pack_run
    from pgolf.runtime import Runtime
    from pgolf.train.loop import train

    preset = tiny_preset(["model.model_dim=256", "train.iterations=3", "train.max_wallclock_seconds=600",
                          "train.gptq_reserve_seconds=30", "train.gptq_calibration_sequences=2",
                          'train.gptq_calibration_source="self"', "train.gptq_calibration_seq_len=8",
                          'pack.quant="gptq-int5"', 'pack.gptq_act_order="ascending"', "pack.gptq_block_size=32"])
    s = train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    cal = s["calibration"]
    assert cal["source"] == "self-generated" and cal["seq_len"] == 8 and cal["within_cap"] is True
    packed = pack_run(tmp_path / "run")  # the preset's own quantizer, no --quant
    assert packed["quant"] == "gptq-int5" and packed["calibration"]["source"] == "self-generated"


def test_calibration_past_the_cap_is_flagged(tmp_path, tiny_data, tiny_preset):
    from pgolf.runtime import Runtime
    from pgolf.train.loop import train

    preset = tiny_preset(["model.model_dim=256", "train.iterations=100", "train.max_wallclock_seconds=0.001",
                          "train.gptq_calibration_sequences=4"])
    s = train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    assert s["calibration"]["within_cap"] is False
    assert "raise train.gptq_reserve_seconds" in (tmp_path / "run" / "train.log").read_text()


def test_the_reserve_moves_the_end_of_the_warmdown():
    from pgolf.config import TrainConfig
    from pgolf.train.schedule import lr_multiplier, training_cap_ms

    cfg = TrainConfig(max_wallclock_seconds=600, gptq_reserve_seconds=18, warmdown_fraction=0.1)
    assert training_cap_ms(cfg) == 582_000
    assert lr_multiplier(cfg, 100, 582_000) == 0.0 and lr_multiplier(cfg, 100, 400_000) == 1.0


def test_hessians_of_linears_that_share_an_input_equal_one_update_per_linear(tiny_preset):
    """Q/K/V read one tensor and get its xᵀx computed once: the same Hessians, bit for bit, as a
    plain hook that updates each linear from its own input."""
    from pgolf.model.gpt import GPT
    from pgolf.quant.calibration import collect_hessians, quantizable_linears

    torch.manual_seed(0)
    model = GPT(tiny_preset(["model.model_dim=256"]).model)
    batches = [torch.randint(0, 256, (2, 16)) for _ in range(3)]
    got = collect_hessians(model, iter(batches))
    plain = {name: GPTQ(m.in_features) for name, m in quantizable_linears(model).items()}
    hooks = [m.register_forward_hook(lambda mod, inp, out, g=plain[n]: g.add_batch(inp[0]))
             for n, m in quantizable_linears(model).items()]
    with torch.no_grad():
        for ids in batches:
            model.hidden(ids)
    for h in hooks:
        h.remove()
    assert plain and set(plain) < set(got)
    for name, g in plain.items():
        assert torch.equal(got[name].hessian, g.hessian), name


def test_random_calibration_windows_are_distinct_in_range_and_seeded():
    from pgolf.quant.calibration import random_windows

    sizes = [5000, 300, 12000]
    w = random_windows(sizes, 40, 64, seed=3)
    assert len(set(w)) == 40 and w == random_windows(sizes, 40, 64, seed=3) != random_windows(sizes, 40, 64, seed=4)
    assert all(0 <= a and a + 65 <= sizes[s] for s, a in w)
    # shards are drawn in proportion to their windows (a 3x larger shard, about 3x the picks)
    picks = [s for s, _ in random_windows([6400, 19200], 200, 64, seed=0)]
    assert 0.15 < picks.count(0) / 200 < 0.35
    with pytest.raises(Exception, match="windows"):
        random_windows([100], 5, 64, seed=0)


def test_random_calibration_reads_training_windows_at_random_offsets(tiny_data):
    import numpy as np

    from pgolf.data.loader import TokenStream
    from pgolf.quant.calibration import train_calibration_batches

    batches, prov = train_calibration_batches(tiny_data, 10, 32, batch=4, sampling="random", seed=1)
    rows = torch.cat(list(batches))
    assert rows.shape == (10, 32) and prov["sampling"] == "random" and prov["seed"] == 1
    train = np.concatenate([np.asarray(s) for s in TokenStream(tiny_data, "train").shards])
    first = torch.from_numpy(train[: 10 * 32].astype(np.int64)).view(10, 32)
    assert not torch.equal(rows, first)  # not the stream's start
    text = train.tobytes()
    for r in rows:  # every row is a window of the training stream
        assert r.numpy().astype(train.dtype).tobytes() in text
