import dataclasses

import pytest
import torch

from pgolf.config import ModelConfig, TrainConfig
from pgolf.model.gpt import GPT
from pgolf.train.optim.groups import build_optimizers, split_parameters
from pgolf.train.optim.muon import Muon, newton_schulz5
from pgolf.train.schedule import lr_multiplier, muon_momentum


@pytest.mark.parametrize("shape", [(64, 64), (32, 96), (96, 32)])
def test_newton_schulz_approximately_orthogonalises(shape):
    torch.manual_seed(0)
    g = torch.randn(*shape)
    x = newton_schulz5(g, steps=5)
    s_in = torch.linalg.svdvals(g) / g.norm()
    s = torch.linalg.svdvals(x)
    # The quintic NS5 drives singular values into roughly [0.7, 1.2], not exactly to 1; five
    # steps cannot lift directions that are nearly absent from g (tiny input singular values).
    kept = s_in > 1e-3
    assert kept.sum() >= min(shape) - 2
    assert s[kept].min() > 0.5 and s.max() < 1.3
    # Same singular vectors as the polar factor U Vᵀ of g.
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    assert torch.nn.functional.cosine_similarity(x.flatten(), (u @ vh).flatten(), dim=0) > 0.97


def test_muon_step_matches_reference_nesterov_update():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(16, 48))
    w0 = w.detach().clone()
    opt = Muon([w], lr=0.1, momentum=0.9, backend_steps=5)
    grads = [torch.randn(16, 48) for _ in range(2)]
    buf = torch.zeros_like(w0)
    ref = w0.clone()
    for g in grads:
        w.grad = g.clone()
        opt.step()
        buf = 0.9 * buf + g
        upd = newton_schulz5(g + 0.9 * buf, 5) * max(1, 16 / 48) ** 0.5
        ref = ref - 0.1 * upd
    torch.testing.assert_close(w.detach(), ref)


def test_parameter_groups_follow_the_baseline_split():
    m = GPT(ModelConfig(num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, addons={"unet_skips": {}}))
    groups = split_parameters(m)
    names = {k: {n for n, _ in v} for k, v in groups.items()}
    assert names["embed"] == {"tok_emb.weight"}
    assert "blocks.0.attn.c_q.weight" in names["matrix"] and "blocks.1.mlp.proj.weight" in names["matrix"]
    assert {"blocks.0.resid_mix", "blocks.0.attn.q_gain", "addons.unet_skips.skip_weights", "blocks.1.mlp_scale"} <= names["scalar"]
    assert not names["head"]
    adam, muon = build_optimizers(m, TrainConfig(), tied=True)
    assert [g["lr"] for g in adam.param_groups] == [0.05, 0.04]
    assert adam.defaults["betas"] == (0.9, 0.95)
    assert muon.param_groups[0]["lr"] == 0.04


def test_wallclock_warmdown_reaches_zero_exactly_at_the_cap():
    cfg = TrainConfig(max_wallclock_seconds=600, warmdown_iters=1200)
    step_ms = 50.0  # 1200 steps of warmdown = 60 s
    assert lr_multiplier(cfg, 100, 100 * step_ms) == 1.0
    assert lr_multiplier(cfg, 11_400, 570_000) == pytest.approx(0.5)
    assert lr_multiplier(cfg, 12_000, 600_000) == 0.0
    assert lr_multiplier(cfg, 12_100, 605_000) == 0.0
    frac = TrainConfig(max_wallclock_seconds=100, warmdown_fraction=0.4)
    assert lr_multiplier(frac, 10, 50_000) == 1.0 and lr_multiplier(frac, 10, 80_000) == pytest.approx(0.5)


def test_step_based_warmdown_without_a_cap():
    cfg = TrainConfig(max_wallclock_seconds=0, iterations=100, warmdown_iters=20)
    assert lr_multiplier(cfg, 79, 0) == 1.0
    assert lr_multiplier(cfg, 90, 0) == pytest.approx(0.5)


def test_fractions_of_the_run_apply_to_the_step_count_without_a_cap():
    """A fixed-step run follows the schedule a wallclock run of as many steps would."""
    steps = TrainConfig(max_wallclock_seconds=0, iterations=200, warmdown_fraction=0.25, warmdown_iters=20,
                        muon_momentum_warmup_fraction=0.5)
    clock = dataclasses.replace(steps, max_wallclock_seconds=200.0, iterations=20000)  # one step a second
    for step in (0, 50, 100, 149, 150, 175, 199, 200):
        assert lr_multiplier(steps, step, 0) == pytest.approx(lr_multiplier(clock, step, step * 1000.0))
        assert muon_momentum(steps, step) == pytest.approx(muon_momentum(clock, step, step * 1000.0))
    assert lr_multiplier(steps, 175, 0) == pytest.approx(0.5)


def test_muon_momentum_warms_up_linearly():
    cfg = TrainConfig()
    assert muon_momentum(cfg, 0) == pytest.approx(0.85)
    assert muon_momentum(cfg, 250) == pytest.approx(0.90)
    assert muon_momentum(cfg, 5000) == pytest.approx(0.95)
    by_clock = dataclasses.replace(cfg, muon_momentum_warmup_fraction=0.5, max_wallclock_seconds=100.0)
    assert muon_momentum(by_clock, 0, 0.0) == pytest.approx(0.85)  # the step count no longer matters
    assert muon_momentum(by_clock, 9999, 25_000.0) == pytest.approx(0.90)  # a quarter of the cap: halfway
    assert muon_momentum(by_clock, 1, 60_000.0) == pytest.approx(0.95)


def test_polar_express_orthogonalises_more_tightly_than_the_quintic():
    g = torch.randn(64, 128, generator=torch.Generator().manual_seed(0))
    spread = {c: torch.linalg.svdvals(newton_schulz5(g, 5, coefficients=c)) for c in ("quintic", "polar-express")}
    assert (spread["polar-express"] - 1).abs().max() < (spread["quintic"] - 1).abs().max()
    assert (spread["polar-express"] - 1).abs().max() < 0.2


def test_muoneq_r_makes_the_update_blind_to_the_scale_of_each_gradient_row():
    torch.manual_seed(0)
    grad = torch.randn(32, 48)
    row_scale = torch.rand(32, 1) * 10 + 0.1
    updates = []
    for row_normalize in (True, False):
        for g in (grad, grad * row_scale):
            w = torch.nn.Parameter(torch.zeros(32, 48))
            opt = Muon([w], lr=1.0, momentum=0.0, row_normalize=row_normalize)
            w.grad = g.clone()
            opt.step()
            updates.append(w.detach().clone())
    torch.testing.assert_close(updates[0], updates[1], rtol=1e-4, atol=1e-5)  # MuonEq-R: rows normalised first
    assert not torch.allclose(updates[2], updates[3], rtol=1e-2, atol=1e-3)  # plain Muon sees the row scales


def test_an_unknown_newton_schulz_variant_is_a_config_error():
    from pgolf.errors import ConfigError

    with pytest.raises(ConfigError, match="muon_coefficients"):
        Muon([torch.nn.Parameter(torch.zeros(2, 2))], lr=0.1, coefficients="cubic")


def test_the_lr_floor_holds_the_warmdown_at_min_lr():
    clock = TrainConfig(max_wallclock_seconds=100, warmdown_fraction=0.85, min_lr=0.1)
    assert lr_multiplier(clock, 1, 10_000) == 1.0
    assert lr_multiplier(clock, 1, 50_000) == pytest.approx(50 / 85)
    assert lr_multiplier(clock, 1, 95_000) == pytest.approx(0.1)  # 5/85 < 0.1: the floor
    steps = dataclasses.replace(clock, max_wallclock_seconds=0, iterations=100)
    assert lr_multiplier(steps, 99, 0) == pytest.approx(0.1)


def test_the_embedding_group_takes_its_own_weight_decay():
    m = GPT(ModelConfig(num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, vocab_size=64))
    adam, _ = build_optimizers(m, TrainConfig(adam_weight_decay=0.02, embed_weight_decay=0.085), tied=True)
    assert [g["weight_decay"] for g in adam.param_groups] == [0.085, 0.02]


def test_bf16_state_keeps_the_embedding_its_adam_moments_and_muons_momentum_in_bf16():
    """#1855's precision (train.bf16_state): only the tied embedding is bf16 (so are its AdamW
    moments), Muon's momentum is bf16, every other parameter and state stays fp32; a step under bf16
    autocast works, and the embedding goes back to fp32 exactly when training ends."""
    from pgolf.train.precision import keep_embedding_in_bf16, restore_fp32_embedding

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=64, num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2)
    model = GPT(cfg)
    keep_embedding_in_bf16(model)
    tcfg = dataclasses.replace(TrainConfig(), adam_weight_decay=0.02)
    adam, muon = build_optimizers(model, tcfg, tied=True, momentum_dtype=torch.bfloat16)
    ids = torch.randint(0, 64, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(ids, ids)
    loss.backward()
    adam.step()
    muon.step()
    assert {n for n, p in model.named_parameters() if p.dtype == torch.bfloat16} == {"tok_emb.weight"}
    assert adam.state[model.tok_emb.weight]["exp_avg"].dtype == torch.bfloat16
    others = [s["exp_avg"].dtype for p, s in adam.state.items() if p is not model.tok_emb.weight]
    assert others and set(others) == {torch.float32}
    assert muon.state and {s["momentum_buffer"].dtype for s in muon.state.values()} == {torch.bfloat16}
    before = model.tok_emb.weight.detach().clone()
    restore_fp32_embedding(model)
    assert model.tok_emb.weight.dtype == torch.float32 and torch.equal(model.tok_emb.weight, before.float())


def test_bf16_momentum_step_stays_close_to_the_fp32_step():
    torch.manual_seed(0)
    w = torch.randn(64, 32)
    g = torch.randn(64, 32)
    out = []
    for dtype in (None, torch.bfloat16):
        p = torch.nn.Parameter(w.clone())
        p.grad = g.clone()
        opt = Muon([p], lr=0.02, momentum=0.95, row_normalize=True, momentum_dtype=dtype)
        opt.step()
        out.append(p.detach())
    assert not torch.equal(out[0], out[1])  # the bf16 path really ran
    torch.testing.assert_close(out[1], out[0], atol=2e-3, rtol=0)


def test_bf16_state_is_a_cuda_setting_cpu_training_stays_fp32(tiny_data, tiny_preset, tmp_path):
    from pgolf.runtime import Runtime
    from pgolf.train.loop import build_trainer
    from pgolf.train.precision import wants_bf16_state

    preset = tiny_preset(["train.bf16_state=true"])
    assert wants_bf16_state(preset.train, torch.device("cuda")) and not wants_bf16_state(preset.train, torch.device("cpu"))
    t = build_trainer(preset, tiny_data, None, Runtime(), None, progress=False)
    assert t.model.tok_emb.weight.dtype == torch.float32 and t.muon.momentum_dtype is None
