"""AWQ-lite (pgolf.quant.awq): saliency against a plain computation, the global top-k choice, the
finer grid inside the GPTQ solve against the sequential reference, the stored parts, and the byte
accounting of what pack stores."""

import numpy as np
import pytest
import torch

from pgolf.config import PackConfig
from pgolf.quant.awq import group_scores, select_groups
from pgolf.quant.encoding import decode, main_shape
from pgolf.quant.gptq import GPTQ
from pgolf.quant.layout import relayout
from pgolf.quant.registry import get_quantizer
from pgolf.quant.rtn import rtn_matrix
from tests.conftest import backbone_roles
from tests.test_gptq import _layer


def test_group_scores_are_input_rms_times_mean_abs_weight_summed_per_group():
    w, x, gptq = _layer(rows=8, cols=40)
    rms = x.double().square().mean(dim=0).sqrt()
    saliency = rms * w.double().abs().mean(dim=0)
    got = group_scores(w, torch.diag(gptq.hessian), 16)
    assert [s for _, s in got] == [0, 16]  # whole groups only: 40 columns hold two of 16
    for (score, start) in got:
        assert score == pytest.approx(float(saliency[start:start + 16].sum()), rel=1e-12)


def test_the_top_groups_are_chosen_over_all_matrices_together():
    g = torch.Generator().manual_seed(0)
    quiet = torch.randn(4, 32, generator=g) * 0.01
    loud = torch.randn(4, 32, generator=g)
    diag = torch.ones(32, dtype=torch.float64)
    diag[8:16] = 100.0  # the loud matrix's second group of 8 sees the largest inputs
    picked = select_groups({"a.quiet": (quiet, torch.ones(32, dtype=torch.float64)), "b.loud": (loud, diag)}, 8, 1)
    assert picked == {"b.loud": [8]}
    two = select_groups({"a.quiet": (quiet, diag), "b.loud": (loud, diag)}, 8, 2)
    assert two["b.loud"][0] == 8 and sum(len(v) for v in two.values()) == 2
    assert select_groups({"b.loud": (loud, diag), "a.quiet": (quiet, diag)}, 8, 2) == two  # order-free


def reference_obs_mixed(w, h, scale, fine_scale, fine, qmax, fine_qmax, damp=0.01):
    """Sequential OBS where the columns in `fine` use their own grid."""
    w, h = w.double().clone(), h.double().clone()
    h += damp * h.diag().mean() * torch.eye(h.size(0), dtype=h.dtype)
    hinv = torch.linalg.inv(h)
    q = torch.zeros_like(w)
    for j in range(w.size(1)):
        s, m = (fine_scale.double(), fine_qmax) if fine[j] else (scale.double(), qmax)
        q[:, j] = torch.clamp(torch.round(w[:, j] / s), -m, m)
        err = (w[:, j] - q[:, j] * s) / hinv[j, j]
        w[:, j + 1 :] -= err[:, None] * hinv[j, j + 1 :][None, :]
        hinv = hinv - hinv[:, j : j + 1] @ hinv[j : j + 1, :] / hinv[j, j]
    return q


@pytest.mark.parametrize("block_size", [1, 16, 128])
def test_protected_columns_are_solved_on_their_grid_inside_the_same_gptq_solve(block_size):
    w, x, gptq = _layer(rows=24, cols=48)
    _, scale = rtn_matrix(w, 4)
    fine_scale = (scale.float() * 7 / 127).half().float()
    fine = torch.zeros(48, dtype=torch.bool)
    fine[16:32] = True
    got = gptq.quantize(w, scale.float(), bits=4, block_size=block_size, act_order="none", fine=fine,
                        fine_scale=fine_scale, fine_bits=8)
    want = reference_obs_mixed(w, gptq.hessian, scale.float(), fine_scale, fine, 7, 127)
    assert (got.double() != want).float().mean() < 0.01
    assert got[:, ~fine].abs().max() <= 7 and got[:, fine].abs().max() > 7  # the finer grid is used
    # with act-order the mask follows its columns through the permutation
    ordered = gptq.quantize(w, scale.float(), bits=4, fine=fine, fine_scale=fine_scale, fine_bits=8)
    assert ordered[:, ~fine].abs().max() <= 7 and ordered[:, fine].abs().max() > 7


def _state(seed=0):
    """Two block matrices big enough to quantize (> 65,536 elements), with Hessians."""
    g = torch.Generator().manual_seed(seed)
    state = {"blocks.0.mlp.fc.weight": torch.randn(512, 256, generator=g) * 0.05,
             "blocks.0.attn.c_q.weight": torch.randn(256, 512, generator=g) * 0.05}
    hessians = {}
    for name, w in state.items():
        cols = w.size(1)
        x = torch.randn(600, cols, generator=g) * torch.linspace(0.2, 3.0, cols)  # a few loud inputs
        hessians[name] = GPTQ(cols)
        hessians[name].add_batch(x)
    return state, hessians


def _pack(awq_top, **kw):
    state, hessians = _state()
    cfg = PackConfig(quant="gptq-int6", clip_search="sdclip", awq_top=awq_top, **kw)
    return state, get_quantizer("gptq-int6")(state, cfg, backbone_roles(state), hessians=hessians), cfg


def test_awq_off_stores_exactly_what_gptq_stored_before():
    state, plain, _ = _pack(0)
    assert all("awq_q" not in t.parts for t in plain)
    assert all(main_shape(t) == t.shape for t in plain)


def test_awq_stores_the_protected_columns_apart_and_decodes_them_in_every_layout():
    state, tensors, cfg = _pack(2)
    _, plain, _ = _pack(0)
    protected = {t.name: t for t in tensors if "awq_q" in t.parts}
    assert sum(np.asarray(t.parts["awq_start"]).size for t in protected.values()) == 2
    for t in protected.values():
        rows, cols = t.shape
        k = np.asarray(t.parts["awq_start"]).size
        assert main_shape(t) == (rows, cols - 64 * k)
        assert np.asarray(t.parts["awq_q"]).shape == (rows, 64 * k) and np.abs(t.parts["awq_q"]).max() > 31
        assert np.asarray(t.parts["awq_scale"]).dtype == np.float16
    decoded = {t.name: decode(t) for t in tensors}
    for layout in ("bytes", "columns"):
        for t in relayout(tensors, layout):
            assert torch.equal(decode(t), decoded[t.name]), (layout, t.name)
    # the protected columns are reconstructed more closely than without AWQ, the error weighted by the inputs
    before = {t.name: decode(t) for t in plain}
    for name, t in protected.items():
        w = state[name]
        for start in np.asarray(t.parts["awq_start"]).tolist():
            cols = slice(start, start + 64)
            err = lambda d: float((d[:, cols] - w[:, cols]).square().sum())
            assert err(decoded[name]) < 0.25 * err(before[name])


def test_stored_awq_bytes_are_what_the_plan_counts_given_the_chosen_groups():
    from pgolf.quant.accounting import awq_matrices, planned, stored

    state, tensors, cfg = _pack(2)
    roles = backbone_roles(state)
    quantizer = get_quantizer("gptq-int6")
    shapes = {n: (tuple(t.shape), True) for n, t in state.items()}
    got = {k: g.as_dict() for k, g in stored(tensors, roles, cfg, quantizer, set()).items()}
    want = {k: g.as_dict() for k, g in planned(shapes, roles, cfg, quantizer, set(), awq_groups=awq_matrices(tensors)).items()}
    assert got == want
    chosen = awq_matrices(tensors)
    assert got["matrices int6"]["awq_params"] == sum(64 * k * state[n].shape[0] for n, k in chosen.items())
    assert got["matrices int6"]["awq"] == sum(2 * state[n].shape[0] + 2 * k for n, k in chosen.items())
    # before packing, the plan's upper bound takes the groups of the matrix with the most rows
    bound = planned(shapes, roles, cfg, quantizer, set())["matrices int6"]
    assert bound.awq_params == 2 * 64 * 512 >= got["matrices int6"]["awq_params"]
    assert bound.params == got["matrices int6"]["params"]


def test_awq_needs_a_gptq_quantizer():
    from pgolf.errors import ConfigError
    from pgolf.job.preset import load_preset

    with pytest.raises(ConfigError, match="awq_top"):
        load_preset("cpu-mini", ["pack.awq_top=1"])
    with pytest.raises(ConfigError, match="awq_bits"):
        load_preset("cpu-mini", ["pack.awq_bits=9"])
