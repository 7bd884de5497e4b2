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
