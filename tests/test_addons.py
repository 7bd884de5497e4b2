"""Every architecture add-on: shapes, causality, exact baseline when neutral, its own maths,
parameter counts."""

import math

import pytest
import torch
import torch.nn.functional as F

from pgolf.config import ModelConfig
from pgolf.job.preset import load_preset
from pgolf.model.addons import ADDONS, load_all
from pgolf.model.addons.bigram_hash import bigram_buckets
from pgolf.model.gpt import GPT, count_parameters

BASE = {"unet_skips": {}}
V, D, L = 64, 64, 4

# name -> (config table, function that makes the add-on an exact no-op, or None)
ADDON_CASES = {
    "unet_skips": ({}, None),
    "partial_rope": ({"dims": 8, "ntk_train_seq_len": 8}, None),
    "ln_scale": ({}, None),
    "xsa": ({"last": 2}, None),
    "value_residual": ({"mode": "sigmoid"}, lambda a: a.gates.fill_(-math.inf)),
    "value_embed": ({"dim": 16, "layers": [-1]}, lambda a: a.scale.zero_()),
    "bigram_hash": ({"buckets": 97, "dim": 16}, lambda a: a.scale.zero_()),
    "smear_gate": ({}, lambda a: a.smear.fill_(-math.inf)),
    "dtg": ({}, lambda a: a.gate_b.fill_(math.inf)),
    "orthogonal_init": ({}, None),
    "depth_recurrence": ({"start": 1, "end": 2, "loops": 1, "enable_at": 0.5}, None),  # see its own test
    "parallel_lanes": ({"start": 2}, None),  # two lanes are not the sequential block; see its reference test
    "sparse_attn_gate": ({"window": 12, "scale": 0.5}, None),  # zero-init halves heads; see its own test
    "smear_gate_v3": ({"window": 12}, lambda a: a.strength.zero_()),
    "doc_isolation": ({"bos_id": 1}, None),  # a mask, not weights; see its own tests
    "asym_logit": ({}, lambda a: None),  # both caps start at the softcap: the backbone exactly
}


def make(addons: dict, seed: int = 0, **shape) -> GPT:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=V, num_layers=L, model_dim=D, num_heads=4, num_kv_heads=2,
                      addons={**BASE, **addons}, **shape)
    return GPT(cfg)


def randomize(model: GPT) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.copy_(torch.randn_like(p) * 0.3)


def test_every_registered_addon_is_covered():
    load_all()
    assert set(ADDONS.names()) == set(ADDON_CASES)


@pytest.mark.parametrize("name", sorted(ADDON_CASES))
def test_addon_output_shape_and_causality(name):
    cfg, _ = ADDON_CASES[name]
    m = make({name: cfg})
    randomize(m)
    ids = torch.randint(0, V, (2, 24))
    with torch.no_grad():
        out = m(ids)
        assert out.shape == (2, 24, V) and torch.isfinite(out).all()
        for t in (0, 7, 22):
            changed = ids.clone()
            changed[:, t + 1 :] = torch.randint(0, V, changed[:, t + 1 :].shape)
            torch.testing.assert_close(m(changed)[:, : t + 1], out[:, : t + 1], rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n, (_, neutral) in ADDON_CASES.items() if neutral])
def test_neutral_addon_gives_exactly_the_baseline(name):
    cfg, neutral = ADDON_CASES[name]
    base, with_addon = make({}), make({name: cfg})
    randomize(base)
    shared = {k: v for k, v in base.state_dict().items()}
    with_addon.load_state_dict(shared, strict=False)
    with torch.no_grad():
        neutral(with_addon.addons[name])
        ids = torch.randint(0, V, (2, 16))
        exact = name != "dtg"  # x_in + 1·(x − x_in) is x only up to rounding
        torch.testing.assert_close(with_addon(ids), base(ids), rtol=0 if exact else 1e-5, atol=0 if exact else 1e-5)


def test_no_addons_but_the_baseline_changes_nothing():
    a, b = make({}), make({})
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert set(a.addons) == {"unet_skips"}


def test_xsa_removes_the_component_along_the_own_value():
    from pgolf.model.addons.xsa import XSA

    xsa = XSA(XSA.Options(), ModelConfig(num_layers=2))
    y, v = torch.randn(2, 8, 5, 16), torch.randn(2, 4, 5, 16)
    z = xsa.attn_output(y, v, 0, None)
    vhat = torch.nn.functional.normalize(v, dim=-1).repeat_interleave(2, dim=1)
    assert (z * vhat).sum(-1).abs().max() < 1e-5
    torch.testing.assert_close(z, y - (y * vhat).sum(-1, keepdim=True) * vhat)
    assert make({"xsa": {"last": 2}}).addons["xsa"].layers == {2, 3}
    assert make({"xsa": {}}).addons["xsa"].layers == {0, 1, 2, 3}


def test_partial_rope_rotates_only_the_first_dims_and_full_dims_equal_rope():
    from pgolf.model.blocks import Rotary

    x = torch.randn(1, 2, 10, 16)
    part = Rotary(16, 10000.0, dims=4)(x)
    torch.testing.assert_close(part[..., 4:], x[..., 4:], rtol=0, atol=0)
    assert not torch.allclose(part[..., :4], x[..., :4])
    torch.testing.assert_close(Rotary(16, 10000.0, dims=16)(x), Rotary(16, 10000.0)(x), rtol=0, atol=0)
    # NTK base scaling past the train length: base' = base·(T/n)^(d/(d−2))
    r = Rotary(16, 10000.0, dims=16, ntk_train_seq_len=5)
    expect = Rotary(16, 10000.0 * 2 ** (16 / 14), dims=16)
    torch.testing.assert_close(r(x), expect(x))


def test_ln_scale_sets_one_over_sqrt_layer_plus_one():
    m = make({"ln_scale": {}})
    assert [b.norm_scale for b in m.blocks] == pytest.approx([1 / math.sqrt(i + 1) for i in range(L)])


def test_bigram_hash_matches_the_published_hash():
    ids = torch.tensor([[5, 7, 1000, 3]])
    h = bigram_buckets(ids, 2048)
    assert h[0, 0] == 2047
    assert h[0, 1] == ((36313 * 7) ^ (27191 * 5)) % 2047
    assert h[0, 2] == ((36313 * 1000) ^ (27191 * 7)) % 2047


def test_smear_gate_blends_with_the_previous_position():
    from pgolf.model.addons.smear_gate import SmearGate

    sg = SmearGate(SmearGate.Options(), ModelConfig(model_dim=3))
    x = torch.arange(12.0).view(1, 4, 3)
    out = sg.post_embed(x, None)
    torch.testing.assert_close(out[0, 0], 0.5 * x[0, 0])
    torch.testing.assert_close(out[0, 2], 0.5 * x[0, 2] + 0.5 * x[0, 1])


def test_value_residual_variants_and_counts():
    for mode, n in (("sigmoid", L - 1), ("additive", L - 1), ("two_scalar", 2 * (L - 1))):
        m = make({"value_residual": {"mode": mode}})
        assert sum(p.numel() for p in m.addons["value_residual"].parameters()) == n
    from pgolf.errors import ConfigError

    with pytest.raises(ConfigError, match="mode"):
        make({"value_residual": {"mode": "nope"}})


def test_orthogonal_init_keeps_zero_init_projections():
    m = make({"orthogonal_init": {}})
    for b in m.blocks:
        w = b.attn.c_q.weight
        torch.testing.assert_close(w @ w.T, torch.eye(D), atol=1e-5, rtol=0)
        assert not b.attn.proj.weight.any() and not b.mlp.proj.weight.any()
    scaled = make({"orthogonal_init": {"scale_proj": True}, "bigram_hash": {"dim": 64}})
    p = scaled.addons["bigram_hash"].proj.weight
    torch.testing.assert_close(p @ p.T, torch.eye(D) / (2 * L), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name, expected", [
    ("bigram_hash", 97 * 16 + 16 * D + 1),
    ("value_embed", V * 16 + 16 * 32 + 1 + 1),
    ("smear_gate", D),
    ("dtg", L * (D + 1)),
    ("xsa", 0), ("ln_scale", 0), ("partial_rope", 0), ("orthogonal_init", 0),
    ("depth_recurrence", D),  # no weights of its own; 6 virtual layers need one more U-Net skip (3 vs 2)
    ("parallel_lanes", L * 2 + L * 2 * 2),
    ("sparse_attn_gate", L * 4 * 12),
    ("smear_gate_v3", 12 + 1),
    ("doc_isolation", 0),
    ("asym_logit", 2),
])
def test_addon_parameter_counts(name, expected):
    base = count_parameters(make({}))
    assert count_parameters(make({name: ADDON_CASES[name][0]})) - base == expected


@pytest.mark.parametrize("preset, params", [
    ("naive-baseline", 17_059_912),   # the contest script's log
    ("record-549", 26_928_220),       # PR #549 log
    ("seed-1150-ttt-slot", 26_993_756),  # PR #1150 log
    ("seed-731-hedge", 26_993_766),   # PR #731 TTT log
    ("record-1855", 35_945_671),      # PR #1855 log
])
def test_seed_presets_reproduce_the_logged_parameter_counts(preset, params):
    with torch.device("meta"):
        assert count_parameters(GPT(load_preset(preset).model)) == params


def test_unknown_addon_and_unknown_addon_key_are_config_errors():
    from pgolf.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model add-on 'xsaa'.*did you mean 'xsa'"):
        make({"xsaa": {}})
    with pytest.raises(ConfigError, match="unknown key 'model.addons.xsa.lats'; did you mean 'last'"):
        make({"xsa": {"lats": 2}})


def test_depth_recurrence_runs_the_span_again_and_switches_with_progress():
    from pgolf.model.recurrence import run_order

    assert run_order(11, 3, 5, 2) == [0, 1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5, 6, 7, 8, 9, 10]
    m = make({"depth_recurrence": {"start": 1, "end": 2, "loops": 1, "enable_at": 0.5}})
    assert m.layer_order() == [0, 1, 2, 1, 2, 3]  # built models run as training finished
    assert m.set_train_progress(0.0) and m.layer_order() == [0, 1, 2, 3]
    assert not m.set_train_progress(0.49) and m.set_train_progress(0.5) and m.layer_order() == [0, 1, 2, 1, 2, 3]
    assert m.addons["unet_skips"].skip_weights.shape == (3, D)


def test_depth_recurrence_off_is_exactly_the_baseline_and_on_repeats_the_blocks():
    base, looped = make({}), make({"depth_recurrence": {"start": 1, "end": 2, "loops": 1}})
    randomize(base)
    state = base.state_dict()
    with torch.no_grad():
        skips = state.pop("addons.unet_skips.skip_weights")
        looped.load_state_dict(state, strict=False)
        looped.addons["unet_skips"].skip_weights[:2] = skips
        looped.addons["unet_skips"].skip_weights[2] = torch.randn(D)
        ids = torch.randint(0, V, (2, 16))
        looped.set_train_progress(0.0)
        torch.testing.assert_close(looped(ids), base(ids), rtol=0, atol=0)
        looped.set_train_progress(1.0)
        # reference: the blocks in the looped order, U-Net split 3 / 3 over the six virtual layers
        from pgolf.model.addons import ForwardContext
        from pgolf.model.blocks import rms_norm

        ctx = ForwardContext(ids=ids, num_layers=L)
        x = x0 = rms_norm(looped.tok_emb(ids))
        stack, w = [], looped.addons["unet_skips"].skip_weights
        for v, i in enumerate([0, 1, 2, 1, 2, 3]):
            if v >= 3 and stack:
                x = x + w[v - 3] * stack.pop()
            x = looped.blocks[i](x, x0, ctx)
            if v < 3:
                stack.append(x)
        torch.testing.assert_close(looped(ids), looped.logits_from_hidden(rms_norm(x)), rtol=0, atol=0)


def test_parallel_lanes_match_a_direct_computation():
    from pgolf.model.addons import ForwardContext
    from pgolf.model.blocks import rms_norm

    m = make({"parallel_lanes": {"start": 2}})
    randomize(m)
    lanes = m.addons["parallel_lanes"]
    ids = torch.randint(0, V, (2, 16))
    ctx = ForwardContext(ids=ids, num_layers=L)
    with torch.no_grad():
        x = x0 = rms_norm(m.tok_emb(ids))
        w = m.addons["unet_skips"].skip_weights
        x = m.blocks[0](x, x0, ctx)
        s0 = x
        x = m.blocks[1](x, x0, ctx)
        s1 = x
        lane0 = lane1 = x
        for i, skip in ((2, s1), (3, s0)):
            lane0 = lane0 + w[i - 2] * skip  # the skip merges into lane 0 only
            b = m.blocks[i]
            a = b.attn_scale * b.attn(rms_norm(b.resid_mix[0] * lane0 + b.resid_mix[1] * x0), ctx)
            f = b.mlp_scale * b.mlp(rms_norm(lane1))
            rho, pi = lanes.resid[i], lanes.post[i]
            lane0, lane1 = rho[0] * lane0 + pi[0, 0] * a + pi[1, 0] * f, rho[1] * lane1 + pi[0, 1] * a + pi[1, 1] * f
        expected = m.logits_from_hidden(rms_norm(0.5 * (lane0 + lane1)))
        torch.testing.assert_close(m(ids), expected, rtol=1e-6, atol=1e-6)
    fresh = make({"parallel_lanes": {"start": 2}}).addons["parallel_lanes"]
    assert torch.all(fresh.resid == 1.1) and torch.all(fresh.post == 1.0)


def test_sparse_attn_gate_at_init_halves_every_head_exactly():
    base, gated = make({}), make({"sparse_attn_gate": {"window": 12, "scale": 0.5}})
    randomize(base)
    gated.load_state_dict(base.state_dict(), strict=False)
    with torch.no_grad():
        gated.addons["sparse_attn_gate"].weight.zero_()
        for b in base.blocks:
            b.attn.proj.weight.mul_(0.5)  # σ(0) = ½ on every head, before the output projection
        ids = torch.randint(0, V, (2, 16))
        torch.testing.assert_close(gated(ids), base(ids), rtol=0, atol=0)
        gated.addons["sparse_attn_gate"].weight[1, 2, 0] = 3.0  # layer 1, head 2 only
        assert not torch.equal(gated(ids), base(ids))


@pytest.mark.parametrize("name, table", [("smear_gate_v3", {"window": 12, "bos_id": 1}),
                                         ("smear_gate", {"bos_id": 1}),
                                         ("bigram_hash", {"buckets": 97, "dim": 16, "bos_id": 1})])
def test_previous_token_features_do_not_reach_across_bos(name, table):
    """With the BOS mask, what a BOS position computes does not depend on the token before it."""
    m = make({name: table})
    randomize(m)
    ids = torch.randint(2, V, (2, 16))
    ids[:, 8] = 1
    other = ids.clone()
    other[:, 7] = (ids[:, 7] + 1) % (V - 2) + 2
    from pgolf.model.addons import ForwardContext

    unmasked = make({name: {**table, "bos_id": -1}})
    unmasked.load_state_dict(m.state_dict())
    emb = {}  # the embedding path (what the mask governs) at the BOS position, x0
    with torch.no_grad():
        for tag, stream in (("a", ids), ("b", other)):
            for mod, key in ((m, "masked"), (unmasked, "unmasked")):
                emb[tag, key] = mod.embed(stream, ForwardContext(ids=stream, num_layers=L))[:, 8]
        torch.testing.assert_close(emb["a", "masked"], emb["b", "masked"], rtol=0, atol=0)
        assert not torch.equal(emb["a", "unmasked"], emb["b", "unmasked"])


def test_document_mask_allows_exactly_the_earlier_positions_of_the_same_document():
    from pgolf.model.addons.doc_isolation import document_mask

    ids = torch.tensor([[5, 6, 1, 7, 8, 1, 9]])
    mask = document_mask(ids, 1)[0, 0]
    doc = [0, 0, 1, 1, 1, 2, 2]
    expected = torch.tensor([[k <= q and doc[k] == doc[q] for k in range(7)] for q in range(7)])
    assert torch.equal(mask, expected)


def test_doc_isolation_keeps_each_document_blind_to_the_one_before():
    """With the mask (and BOS-masked previous-token features), positions of a document score the
    same whatever came before its BOS; without it they do not."""
    table = {"smear_gate_v3": {"window": 12, "bos_id": 1}}
    isolated, plain = make({**table, "doc_isolation": {}}), make(table)
    randomize(isolated)
    plain.load_state_dict(isolated.state_dict())
    ids = torch.randint(2, V, (2, 20))
    ids[:, 9] = 1
    other = ids.clone()
    other[:, :9] = torch.randint(2, V, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(isolated(other)[:, 9:], isolated(ids)[:, 9:], rtol=1e-6, atol=1e-6)
        assert not torch.allclose(plain(other)[:, 9:], plain(ids)[:, 9:], rtol=1e-4, atol=1e-4)
        single = torch.randint(2, V, (2, 20))  # one document per row: the mask is plain causal attention
        torch.testing.assert_close(isolated(single), plain(single), rtol=1e-5, atol=1e-5)


def test_doc_isolation_flex_kernel_equals_the_boolean_mask():
    """kernel = "flex" (a flex_attention block mask) computes what the boolean mask computes, and a
    bad kernel name is a one-line error."""
    from pgolf.errors import ConfigError

    table = {"xsa": {"last": 0}}
    masked = make({**table, "doc_isolation": {}})
    flex = make({**table, "doc_isolation": {"kernel": "flex"}})
    randomize(masked)
    flex.load_state_dict(masked.state_dict())
    ids = torch.randint(2, V, (2, 40))
    ids[0, [0, 13, 14, 30]] = 1
    ids[1, 25] = 1
    with torch.no_grad():
        torch.testing.assert_close(flex(ids), masked(ids), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="kernel"):
        make({"doc_isolation": {"kernel": "flash"}})


def reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, causal):
    """flash_attn_varlen_func's contract, computed directly: (total, H, D) stream, causal attention
    inside each [cu[i], cu[i+1]) segment, GQA by head count."""
    assert causal and torch.equal(cu_q, cu_k) and cu_q.dtype == torch.int32 and q.dtype == torch.bfloat16
    out = torch.empty_like(q)
    bounds = cu_q.tolist()
    for s, e in zip(bounds[:-1], bounds[1:]):
        assert 0 < e - s <= max_q == max_k
        seg = [x[s:e].transpose(0, 1).float() for x in (q, k, v)]
        out[s:e] = F.scaled_dot_product_attention(*seg, is_causal=True, enable_gqa=True).transpose(0, 1).to(q.dtype)
    return out


@pytest.mark.parametrize("max_segment", [0, 6])
def test_doc_isolation_varlen_segments_feed_a_varlen_kernel_what_the_mask_allows(monkeypatch, max_segment):
    """kernel = "varlen" flattens the rows into segments (documents, and max_segment pieces) for
    FlashAttention's varlen function; with a reference function of the same signature in its place
    the model computes what the boolean mask computes (to bf16 precision: the kernel takes bf16)."""
    from pgolf.model.addons import doc_isolation as iso

    masked = make({"doc_isolation": {"max_segment": max_segment}})
    varlen = make({"doc_isolation": {"kernel": "varlen", "max_segment": max_segment}})
    randomize(masked)
    varlen.load_state_dict(masked.state_dict())
    # This machine has no GPU (so the add-on itself takes the mask): hand the model the segments.
    monkeypatch.setattr(iso.DocIsolation, "attention_mask", lambda self, ids: iso.varlen_segments(
        ids, 1, max_segment, reference_varlen))
    ids = torch.randint(2, V, (2, 40))
    ids[0, [0, 13, 14, 30]] = 1
    ids[1, 25] = 1
    segments = iso.varlen_segments(ids, 1, max_segment, reference_varlen)
    starts = {0: [0, 13, 14, 30], 6: [0, 6, 12, 13, 14, 20, 26, 30, 36]}[max_segment] + \
        [40 + p for p in {0: [0, 25], 6: [0, 6, 12, 18, 24, 25, 31, 37]}[max_segment]]
    assert segments.cu_seqlens.tolist() == starts + [80]
    with torch.no_grad():
        torch.testing.assert_close(varlen(ids), masked(ids), rtol=2e-2, atol=2e-2)


def test_segment_mask_cuts_documents_every_max_segment_tokens_from_their_own_start():
    """Brute-force reference: k is visible from q iff k <= q, no BOS in (k, q], and both fall in
    the same max_segment-long piece counted from their document's start (the row's start for the
    document a row opens mid-way)."""
    from pgolf.model.addons.doc_isolation import document_mask

    torch.manual_seed(3)
    for _ in range(20):
        ids = torch.randint(2, 9, (1, 37))
        ids[0, torch.randint(0, 37, (4,))] = 1
        m = int(torch.randint(1, 9, ()))
        row = ids[0].tolist()
        start = [max([i for i in range(q + 1) if row[i] == 1], default=0) for q in range(37)]
        expected = torch.tensor([[k <= q and start[k] == start[q] and (k - start[k]) // m == (q - start[q]) // m
                                  for k in range(37)] for q in range(37)])
        assert torch.equal(document_mask(ids, 1, m)[0, 0], expected)
        assert torch.equal(document_mask(ids, 1, 0), document_mask(ids, 1))


def test_packed_row_scores_each_piece_as_if_it_were_its_own_row():
    """The record's packing: one row of several documents with doc_isolation(flex, max_segment)
    gives every token the logits it gets when its piece (a document, or a max_segment-long part of
    one) is run alone from position 0 — RoPE sees only relative offsets inside a piece. (Previous-
    token features are cut at BOS only, as in the record, so they are left out here.)"""
    packed = make({"doc_isolation": {"kernel": "flex", "max_segment": 8}})
    randomize(packed)
    docs = [[1, *torch.randint(2, V, (n - 1,)).tolist()] for n in (5, 19, 8, 3)]
    row = torch.tensor([sum(docs, [])])
    pieces = [d[i:i + 8] for d in docs for i in range(0, len(d), 8)]
    with torch.no_grad():
        together = packed(row)[0]
        alone = torch.cat([packed(torch.tensor([p]))[0] for p in pieces])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_packed_rows_need_flex_doc_isolation_with_a_segment_length():
    from pgolf.errors import ConfigError
    from pgolf.job.preset import with_overrides
    from pgolf.train.check import check_packed_rows

    base = load_preset("cpu-mini")
    with pytest.raises(ConfigError, match="packed_rows"):
        check_packed_rows(with_overrides(base, ["train.packed_rows=true"]))
    with pytest.raises(ConfigError, match="packed_rows"):
        check_packed_rows(with_overrides(base, ["train.packed_rows=true", "model.addons.doc_isolation.bos_id=1"]))
    with pytest.raises(ConfigError, match="flex"):  # 8,192-token rows fit the mask, 65,536 do not
        check_packed_rows(with_overrides(base, ["train.packed_rows=true", "train.tokens_per_step=131072",
                                                "model.addons.doc_isolation.max_segment=512"]))
    check_packed_rows(with_overrides(base, ["train.packed_rows=true", "model.addons.doc_isolation.max_segment=512"]))
    check_packed_rows(with_overrides(base, ["train.packed_rows=true", 'model.addons.doc_isolation.kernel="flex"',
                                            "model.addons.doc_isolation.max_segment=512"]))


def test_asym_logit_caps_positive_and_negative_logits_apart():
    m = make({"asym_logit": {}})
    cap = m.cfg.logit_softcap
    a = m.addons["asym_logit"]
    z = torch.linspace(-200, 200, 401)
    torch.testing.assert_close(a.softcap(z, cap), cap * torch.tanh(z / cap), rtol=0, atol=0)
    with torch.no_grad():
        a.pos_cap.fill_(10.0)
        a.neg_cap.fill_(40.0)
    out = a.softcap(z, cap)
    assert out.max() <= 10.0 and out.min() >= -40.0 and out.min() < -39.0 and out.max() > 9.9
    assert torch.equal(out[z >= 0], 10.0 * torch.tanh(z[z >= 0] / 10.0))
    m.zero_grad()
    m(torch.randint(0, V, (2, 8)), torch.randint(0, V, (2, 8))).backward()
    assert a.pos_cap.grad is not None and a.neg_cap.grad is not None  # they train with the model


def test_gated_xsa_saturated_is_xsa_at_zero_none_and_its_strengths_train():
    """#2118's gate is tanh(α) per layer and head: α = 0 is plain attention, α = 20 (tanh = 1 in
    float32) is XSA, exactly; in between the strength trains."""
    base, full = make({}), make({"xsa": {"last": 2}})
    off, gated = (make({"xsa": {"last": 2, "gated": True, "gate_init": g}}) for g in (0.0, 20.0))
    randomize(full)
    for m in (base, off, gated):
        m.load_state_dict(full.state_dict(), strict=False)
    with torch.no_grad():
        ids = torch.randint(0, V, (2, 12))
        torch.testing.assert_close(gated(ids), full(ids), rtol=0, atol=0)
        torch.testing.assert_close(off(ids), base(ids), rtol=0, atol=0)
    assert gated.addons["xsa"].gates.shape == (2, 4)
    gated.zero_grad()
    gated(ids, torch.randint(0, V, (2, 12))).backward()
    assert gated.addons["xsa"].gates.grad is not None  # saturated: tanh's slope is ~0 there
    off.zero_grad()
    off(ids, torch.randint(0, V, (2, 12))).backward()
    assert off.addons["xsa"].gates.grad.abs().sum() > 0  # from α = 0 the strengths move
