"""The parameter-role table: the model says once what each tensor is, and the optimizer groups,
the quantizers, pack's report and `pgolf info` read it."""

from __future__ import annotations

import pytest
import torch

from pgolf.config import preset_names
from pgolf.model.gpt import GPT
from pgolf.model.roles import ROLES, parameter_roles, roles_of_config
from pgolf.job.preset import load_preset
from pgolf.train.optim.groups import split_parameters


@pytest.mark.parametrize("name", [n for n in preset_names() if not n.startswith("_")])
def test_every_parameter_of_every_preset_has_exactly_one_role(name):
    preset = load_preset(name)
    with torch.device("meta"):
        model = GPT(preset.model)
    roles = model.roles
    assert list(roles) == [n for n, _ in model.named_parameters()]
    assert set(roles.values()) <= set(ROLES)
    assert roles == roles_of_config(preset.model)


def test_roles_of_the_backbone_and_the_addons():
    preset = load_preset("seed-731-hedge-mini", ["model.tie_embeddings=false"])
    roles = roles_of_config(preset.model)
    expected = {"tok_emb.weight": "embedding", "lm_head.weight": "head", "blocks.0.attn.c_q.weight": "matrix",
                "blocks.0.mlp.fc.weight": "matrix", "blocks.0.resid_mix": "control", "blocks.0.attn.q_gain": "control",
                "addons.unet_skips.skip_weights": "control", "addons.bigram_hash.table": "table",
                "addons.bigram_hash.proj.weight": "scalar", "addons.value_embed.table": "table",
                "addons.smear_gate.smear": "scalar"}
    assert {k: roles[k] for k in expected} == expected


def test_optimizer_groups_follow_the_roles():
    preset = load_preset("seed-731-hedge-mini", ["model.tie_embeddings=false"])
    model = GPT(preset.model)
    groups = {name: group for group, params in split_parameters(model).items() for name, _ in params}
    want = {"embedding": "embed", "table": "embed", "head": "head", "matrix": "matrix", "scalar": "scalar",
            "control": "scalar"}
    assert all(groups[name] == want[role] for name, role in model.roles.items())


def test_an_addon_role_outside_the_table_is_refused(monkeypatch):
    from pgolf.model.addons.smear_gate import SmearGate

    monkeypatch.setattr(SmearGate, "parameter_role", lambda self, name: "embed")
    with pytest.raises(AssertionError, match="role 'embed' is not one of"):
        parameter_roles(GPT(load_preset("seed-731-hedge-mini").model))


def test_pack_needs_a_role_for_every_tensor():
    from pgolf.config import PackConfig
    from pgolf.errors import PgolfError
    from pgolf.quant.registry import get_quantizer

    with pytest.raises(PgolfError, match="x.weight: no parameter role"):
        get_quantizer("rtn-int6")({"x.weight": torch.randn(300, 300)}, PackConfig(), {})


def test_info_reports_parameters_per_role(capsys):
    from pgolf.cli import main

    assert main(["info", "naive-baseline"]) == 0
    out = capsys.readouterr().out
    assert "by role" in out and "matrix 16,515,072" in out and "embedding 524,288" in out
