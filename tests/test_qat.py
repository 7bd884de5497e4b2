import json

import pytest
import torch

from pgolf.model.blocks import Linear
from pgolf.runtime import Runtime
from pgolf.train.loop import train
from pgolf.train.qat import crown_q_penalty, disable_qat, enable_qat, fake_quant


def test_fake_quant_forward_is_quantized_and_backward_is_straight_through():
    torch.manual_seed(0)
    w = torch.randn(8, 32, requires_grad=True)
    out = fake_quant(6)(w)
    scale = w.detach().abs().amax(1, keepdim=True) / 31
    torch.testing.assert_close(out.detach(), torch.clamp(torch.round(w.detach() / scale), -31, 31) * scale)
    c = torch.randn(8, 32)
    (out * c).sum().backward()
    torch.testing.assert_close(w.grad, c)


def test_enable_qat_changes_the_forward_and_disable_restores_it_exactly():
    torch.manual_seed(0)
    model = torch.nn.Sequential(Linear(512, 256), Linear(256, 8))  # only the first is big enough
    x = torch.randn(4, 512)
    before = model(x)
    moved = enable_qat(model, 5)
    assert moved > 0 and model[0].weight_transform is not None and model[1].weight_transform is None
    assert not torch.allclose(model(x), before)
    disable_qat(model)
    assert torch.equal(model(x), before)


def test_crown_q_penalty_and_its_gradient_follow_the_formula():
    torch.manual_seed(0)
    m = Linear(300, 256)
    lam, qmax = 0.01, 15
    p = crown_q_penalty(torch.nn.Sequential(m), lam, qmax)
    w = m.weight.detach()
    delta = w.abs().amax(1, keepdim=True) / qmax
    assert p.item() == pytest.approx((lam / 12) * (w.square() * delta.square()).mean().item(), rel=1e-5)
    p.backward()
    torch.testing.assert_close(m.weight.grad, (lam / 6) * delta.square() * w / w.numel())


def test_late_qat_and_crown_q_switch_on_in_the_warmdown(tmp_path, tiny_data, tiny_preset):
    preset = tiny_preset(["model.model_dim=256", "train.iterations=8", "train.warmdown_iters=6",
                          "train.qat_bits=6", "train.qat_start_lr_scale=0.5", "train.crown_q_lambda=0.01"])
    summary = train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    assert summary["steps"] == 8
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    qat = [r for r in rows if r["kind"] == "qat"]
    assert len(qat) == 1 and qat[0]["mean_weight_change"] > 0 and 4 <= qat[0]["step"] <= 6
    assert "late_qat:on" in (tmp_path / "run" / "train.log").read_text()
