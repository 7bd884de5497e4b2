"""SDClip scales with per-group k, and GPTQ on the tied embedding with the output head's Hessian
(the frontier's quantization, #1394 → #1855)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pgolf.config import PackConfig
from pgolf.errors import ConfigError
from pgolf.quant.encoding import decode_state_dict
from pgolf.quant.gptq_lite import sdclip_rows, tensor_group
from pgolf.quant.registry import get_quantizer
from tests.conftest import backbone_roles


def test_sdclip_steps_are_k_standard_deviations_over_qmax():
    torch.manual_seed(0)
    w = torch.randn(16, 300) * torch.linspace(0.01, 0.1, 16)[:, None]
    q, scale = sdclip_rows(w, 6, 12.0)
    expected = (12.0 * w.std(dim=1) / 31).half()
    assert torch.equal(scale, expected)
    torch.testing.assert_close(q.float(), torch.clamp(torch.round(w / expected.float()[:, None]), -31, 31))


def test_each_group_takes_its_own_k():
    torch.manual_seed(0)
    state = {"tok_emb.weight": torch.randn(300, 256) * 0.02, "blocks.0.attn.c_q.weight": torch.randn(512, 256) * 0.02,
             "blocks.0.mlp.fc.weight": torch.randn(512, 256) * 0.02}
    roles = backbone_roles(state)
    assert [tensor_group(n, roles[n]) for n in state] == ["embedding", "attention", "mlp"]
    cfg = PackConfig(quant="gptq-lite-int6", clip_search="sdclip", embedding_bits=7,
                     sdclip_k={"attention": 13.0, "mlp": 11.5, "embedding": 14.0})
    enc = {t.name: t for t in get_quantizer("gptq-lite-int6")(state, cfg, roles)}
    for name, k, qmax in (("tok_emb.weight", 14.0, 63), ("blocks.0.attn.c_q.weight", 13.0, 31),
                          ("blocks.0.mlp.fc.weight", 11.5, 31)):
        expected = (k * state[name].std(dim=1) / qmax).half().numpy()
        assert (enc[name].parts["scale"] == expected).all(), name
    # a larger k is a coarser grid: fewer distinct codes, so fewer bytes after compression
    coarse = dataclasses.replace(cfg, sdclip_k={"mlp": 30.0})
    fine = decode_state_dict(get_quantizer("gptq-lite-int6")(state, cfg, roles))["blocks.0.mlp.fc.weight"]
    rough = decode_state_dict(get_quantizer("gptq-lite-int6")(state, coarse, roles))["blocks.0.mlp.fc.weight"]
    w = state["blocks.0.mlp.fc.weight"]
    assert (rough - w).square().sum() > (fine - w).square().sum()


def test_gptq_on_the_tied_embedding_uses_the_heads_hessian(tiny_preset, tiny_data):
    """Calibration records the Hessian of the head's input; with gptq_embedding the embedding is
    solved against it and its output error on those inputs drops below the plain rounding's."""
    from pgolf.model.gpt import GPT
    from pgolf.quant.calibration import collect_hessians, train_calibration_batches

    preset = tiny_preset(["model.model_dim=384"])  # 256 x 384 embedding: above the float-passthrough size
    torch.manual_seed(0)
    model = GPT(preset.model)
    with torch.no_grad():
        model.tok_emb.weight.normal_(0, 0.05)
    batches, _ = train_calibration_batches(tiny_data, 8, 64)
    batches = list(batches)
    hessians = collect_hessians(model, iter(batches))
    assert hessians["tok_emb.weight"].hessian.shape == (384, 384)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    roles = model.roles
    base = PackConfig(quant="gptq-int6", clip_search="sdclip", embedding_bits=7, sdclip_k={"embedding": 14.0})
    with_gptq = dataclasses.replace(base, gptq_embedding=True)
    plain = decode_state_dict(get_quantizer("gptq-int6")(state, base, roles, hessians))["tok_emb.weight"]
    solved = decode_state_dict(get_quantizer("gptq-int6")(state, with_gptq, roles, hessians))["tok_emb.weight"]
    with torch.no_grad():
        h = torch.cat([model.hidden(ids) for ids in batches]).reshape(-1, 384)
    w = state["tok_emb.weight"]
    err = {name: ((q - w) @ h.T).square().sum().item() for name, q in (("plain", plain), ("gptq", solved))}
    assert err["gptq"] < err["plain"]


@pytest.mark.parametrize("sets, message", [
    (['pack.clip_search="sdclip"', "pack.sdclip_k.atention=13.0"], "pack.sdclip_k key = 'atention'"),
    (['pack.clip_search="sdclip"', "pack.sdclip_k.mlp=-1.0"], "a positive number"),
    (['pack.quant="rtn-int6"', "pack.gptq_embedding=true"], "gptq_embedding needs a gptq-intN quantizer"),
])
def test_bad_sdclip_and_embedding_settings_are_one_line_errors(sets, message):
    from pgolf.job.preset import load_preset

    with pytest.raises(ConfigError, match=message):
        load_preset("cpu-mini", sets)
