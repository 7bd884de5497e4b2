import torch

from pgolf.config import TrainConfig
from pgolf.train.averaging import AVERAGERS, build_averager
from pgolf.train.optim.muon import Muon


def _model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


def test_ema_follows_the_recurrence_and_replaces_the_final_weights():
    m = _model()
    ema = build_averager(m, TrainConfig(averaging="ema", ema_decay=0.9))
    w0 = m.weight.detach().clone()
    ref = w0.clone()
    for k in range(3):
        with torch.no_grad():
            m.weight.add_(1.0)
        ema.update(m, k + 1, 1.0)
        ref = 0.9 * ref + 0.1 * m.weight.detach()
    ema.apply_to(m)
    torch.testing.assert_close(m.weight.detach(), ref)


def test_swa_averages_snapshots_taken_in_the_warmdown_only():
    m = _model()
    swa = build_averager(m, TrainConfig(averaging="swa", swa_every=2, swa_start_lr_scale=0.5))
    snaps = []
    for step in range(1, 9):
        with torch.no_grad():
            m.weight.add_(1.0)
        scale = 1.0 if step <= 4 else 0.3
        swa.update(m, step, scale)
        if scale < 0.5 and step % 2 == 0:
            snaps.append(m.weight.detach().clone())
    swa.apply_to(m)
    assert len(snaps) == 2
    torch.testing.assert_close(m.weight.detach(), sum(snaps) / 2)


def test_polyak_is_an_ema_with_decay_0998_and_none_is_a_no_op():
    m = _model()
    assert AVERAGERS.get("polyak")(m, TrainConfig()).decay == 0.998
    w = m.weight.detach().clone()
    none = build_averager(m, TrainConfig())
    none.update(m, 1, 1.0)
    none.apply_to(m)
    assert torch.equal(m.weight, w)


def test_muon_decoupled_weight_decay_shrinks_by_lr_times_wd():
    w = torch.nn.Parameter(torch.ones(8, 8))
    opt = Muon([w], lr=0.1, weight_decay=0.04)
    w.grad = torch.zeros(8, 8)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((8, 8), 1 - 0.1 * 0.04))


def test_adamw_is_used_when_adam_weight_decay_is_set():
    from pgolf.config import ModelConfig
    from pgolf.model.gpt import GPT
    from pgolf.train.optim.groups import build_optimizers

    m = GPT(ModelConfig(num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, addons={"unet_skips": {}}))
    adam, muon = build_optimizers(m, TrainConfig(adam_weight_decay=0.04, muon_weight_decay=0.04), tied=True)
    assert isinstance(adam, torch.optim.AdamW) and adam.defaults["weight_decay"] == 0.04
    assert muon.defaults["weight_decay"] == 0.04
    adam, _ = build_optimizers(m, TrainConfig(), tied=True)
    assert type(adam) is torch.optim.Adam


def test_addon_parameters_land_in_their_declared_groups():
    from pgolf.job.preset import load_preset
    from pgolf.model.gpt import GPT
    from pgolf.train.optim.groups import split_parameters

    m = GPT(load_preset("record-549-mini").model)
    names = {g: {n for n, _ in ps} for g, ps in split_parameters(m).items()}
    assert {"addons.bigram_hash.table", "addons.value_embed.table", "tok_emb.weight"} <= names["embed"]
    assert {"addons.bigram_hash.proj.weight", "addons.smear_gate.smear"} <= names["scalar"]
    assert not any(n.startswith("addons.") for n in names["matrix"])
