"""The baseline GPT against a straightforward reference written from docs/techniques.md."""

import math

import pytest
import torch

from pgolf.config import ModelConfig
from pgolf.job.preset import load_preset
from pgolf.model.gpt import GPT, count_parameters

BASELINE_ADDONS = {"unet_skips": {}}


def test_naive_baseline_has_the_contest_scripts_parameter_count():
    # The contest's train_gpt.py logs model_params:17059912 for its default config.
    with torch.device("meta"):
        model = GPT(load_preset("naive-baseline").model)
    assert count_parameters(model) == 17_059_912


def test_initialisation_matches_the_baseline():
    torch.manual_seed(0)
    cfg = ModelConfig(num_layers=3, model_dim=128, num_heads=4, num_kv_heads=2, addons=BASELINE_ADDONS)
    m = GPT(cfg)
    assert m.tok_emb.weight.std().item() == pytest.approx(0.005, rel=0.05)
    for b in m.blocks:
        assert not b.attn.proj.weight.any() and not b.mlp.proj.weight.any()
        assert torch.all(b.attn.q_gain == 1.5)
        assert torch.all(b.resid_mix[0] == 1) and torch.all(b.resid_mix[1] == 0)
        assert torch.all(b.attn_scale == 1) and torch.all(b.mlp_scale == 1)
    sk = m.addons["unet_skips"].skip_weights
    assert sk.shape == (1, 128) and torch.all(sk == 1)


def _rms(x):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + torch.finfo(x.dtype).eps)


def _rope(x, base):
    T, D = x.shape[-2], x.shape[-1]
    half = D // 2
    out = torch.empty_like(x)
    for i in range(half):
        theta = torch.arange(T, dtype=torch.float64) * base ** (-2 * i / D)
        c, s = torch.cos(theta).to(x.dtype), torch.sin(theta).to(x.dtype)
        out[..., i] = x[..., i] * c + x[..., i + half] * s
        out[..., i + half] = -x[..., i] * s + x[..., i + half] * c
    return out


def reference_forward(m: GPT, ids: torch.Tensor) -> torch.Tensor:
    cfg = m.cfg
    H, Hkv, D = cfg.num_heads, cfg.num_kv_heads, cfg.model_dim // cfg.num_heads
    B, T = ids.shape
    mask = torch.ones(T, T, dtype=torch.bool).tril()

    def block(b, x, x0):
        h = b.resid_mix[0] * x + b.resid_mix[1] * x0
        a_in = _rms(h)
        q = (a_in @ b.attn.c_q.weight.T).view(B, T, H, D).transpose(1, 2)
        k = (a_in @ b.attn.c_k.weight.T).view(B, T, Hkv, D).transpose(1, 2)
        v = (a_in @ b.attn.c_v.weight.T).view(B, T, Hkv, D).transpose(1, 2)
        q, k = _rope(_rms(q), cfg.rope_base), _rope(_rms(k), cfg.rope_base)
        q = q * b.attn.q_gain.view(1, H, 1, 1)
        k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, H * D) @ b.attn.proj.weight.T
        h = h + b.attn_scale * y
        u = _rms(h) @ b.mlp.fc.weight.T
        return h + b.mlp_scale * (torch.relu(u) ** 2 @ b.mlp.proj.weight.T)

    x = _rms(m.tok_emb.weight[ids])
    x0, skips = x, []
    n_enc = cfg.num_layers // 2
    for i in range(n_enc):
        x = block(m.blocks[i], x, x0)
        skips.append(x)
    for j in range(cfg.num_layers - n_enc):
        if skips:
            x = x + m.addons["unet_skips"].skip_weights[j] * skips.pop()
        x = block(m.blocks[n_enc + j], x, x0)
    logits = _rms(x) @ m.tok_emb.weight.T
    return cfg.logit_softcap * torch.tanh(logits / cfg.logit_softcap)


@pytest.mark.parametrize("layers, heads, kv", [(3, 4, 2), (4, 4, 4), (5, 8, 2)])
def test_forward_matches_reference(layers, heads, kv):
    torch.manual_seed(layers)
    cfg = ModelConfig(vocab_size=97, num_layers=layers, model_dim=64, num_heads=heads, num_kv_heads=kv,
                      addons=BASELINE_ADDONS)
    m = GPT(cfg)
    with torch.no_grad():
        for p in m.parameters():  # leave the zero init so every path carries signal
            p.normal_(0, 0.3)
    ids = torch.randint(0, 97, (2, 19))
    with torch.no_grad():
        got, want = m(ids), reference_forward(m, ids)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_loss_is_mean_cross_entropy_of_logits_and_model_is_causal():
    torch.manual_seed(1)
    m = GPT(ModelConfig(vocab_size=50, num_layers=2, model_dim=32, num_heads=4, num_kv_heads=2,
                        addons=BASELINE_ADDONS))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    ids, tgt = torch.randint(0, 50, (2, 12)), torch.randint(0, 50, (2, 12))
    with torch.no_grad():
        logits = m(ids)
        ce = torch.nn.functional.cross_entropy(logits.view(-1, 50), tgt.view(-1))
        assert m(ids, tgt).item() == pytest.approx(ce.item(), rel=1e-6)
        per_tok = m(ids, tgt, reduction="none")
        assert per_tok.shape == tgt.shape
        changed = ids.clone()
        changed[:, 7:] = (changed[:, 7:] + 1) % 50
        torch.testing.assert_close(m(changed)[:, :7], logits[:, :7])


def test_leaky_relu2_activation_is_registered():
    from pgolf.model.activations import ACTIVATIONS

    x = torch.tensor([-2.0, 0.0, 3.0])
    assert ACTIVATIONS.get("leaky_relu2")(x).tolist() == [1.0, 0.0, 9.0]
    assert ACTIVATIONS.get("relu2")(x).tolist() == [0.0, 0.0, 9.0]
