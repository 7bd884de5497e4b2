"""Every evaluation method: causality, each token scored once, normalization — the legal ones pass,
the published/illegal ones are shown to fail — plus hand-computed n-gram hashing and Hedge updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pgolf.evaluate.methods.hedge import hedge_update, trigram_bucket
from pgolf.evaluate.pipeline import run_pipeline
from pgolf.runtime import Runtime
from tests.test_windows_pipeline import _tiny

OVERRIDES = {
    "sliding": {"stride": 16, "batch_windows": 8},
    "ttt": {"chunk_tokens": 256, "epochs": 1, "lr": 0.05, "batch_seqs": 4},
    "hedge": {"chunk_tokens": 256, "min_tokens": 200, "trigram_buckets": 512},
    "hedge_normalized": {"chunk_tokens": 256, "order": 4},
    "slot": {"steps": 3, "lr": 0.05, "lr_max": 0.05, "lr_min": 0.01, "batch_windows": 8},
    "slot_causal": {"steps": 3, "lr": 0.05, "batch_windows": 8},
    "prequant_ttt": {"epochs": 1, "lr": 0.01, "lr_final": 0.001},
}
LEGAL = [["standard"], ["sliding"], ["sliding", "ttt"], ["sliding", "slot-causal"], ["sliding", "hedge-normalized"],
         ["sliding", "hedge-flattened"], ["sliding", "ttt", "slot-causal", "hedge-normalized"]]
NONCAUSAL = [("A", ["sliding", "slot"]), ("B", ["standard", "slot"]), ("C", ["sliding", "slot"])]


def _run(methods, tokens, variant=None, observer=None, sharpen=1.0):
    preset, model, tables, _ = _tiny()
    with torch.no_grad():
        model.tok_emb.weight.mul_(sharpen)  # peaked distributions (low entropy), like a trained model
    over = {k: dict(v) for k, v in OVERRIDES.items()}
    if variant:
        over["slot"]["variant"] = variant
    return run_pipeline(model, tokens, tables, preset, Runtime(), methods, overrides=over,
                        keep_scores=True, observer=observer)


def _perturbed(tokens, after, seed=1):
    out = tokens.copy()
    rng = np.random.default_rng(seed)
    out[after + 1 :] = rng.integers(0, 256, out.size - after - 1)
    return out


@pytest.mark.parametrize("methods", LEGAL, ids=lambda m: "+".join(m))
def test_causality_future_tokens_never_change_past_scores(methods):
    _, _, _, tokens = _tiny()
    base = _run(methods, tokens)
    for cut in (300, 777):  # target position t = cut predicts tokens[cut + 1]; change everything after it
        other = _run(methods, _perturbed(tokens, cut + 1))
        scored = ~np.isnan(base.scores[: cut + 1])
        np.testing.assert_allclose(other.scores[: cut + 1][scored], base.scores[: cut + 1][scored], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("variant,methods", NONCAUSAL, ids=lambda v: v if isinstance(v, str) else "")
def test_published_slot_is_not_causal(variant, methods):
    """The published SLOT variants fit δ on the targets they score: a changed future target moves
    earlier scores (the audit flags exactly this)."""
    _, _, _, tokens = _tiny()
    base = _run(methods, tokens, variant)
    cut = 700
    other = _run(methods, _perturbed(tokens, cut + 1), variant)
    scored = ~np.isnan(base.scores[: cut + 1])
    diff = np.abs(other.scores[: cut + 1][scored] - base.scores[: cut + 1][scored])
    assert diff.max() > 1e-4


@pytest.mark.parametrize("methods", LEGAL + [m for _, m in NONCAUSAL] + [["sliding", "hedge"]],
                         ids=lambda m: "+".join(m))
def test_every_target_scored_exactly_once(methods):
    _, _, _, tokens = _tiny()
    r = _run(methods, tokens, "A" if "slot" in methods else None)
    usable = r.score_counts if "standard" not in methods else r.score_counts[: r.totals.tokens]
    assert (usable == 1).all() and r.totals.tokens == usable.size


class MassRecorder:
    def __init__(self):
        self.masses = []

    def sample_rows(self, positions):
        return np.arange(0, len(positions), 7)

    def on_distribution(self, positions, mass, **_):
        self.masses.extend(mass.tolist())

    def on_scored(self, **_):
        pass

    def on_update(self, **_):
        pass


@pytest.mark.parametrize("methods", LEGAL, ids=lambda m: "+".join(m))
def test_scored_distribution_sums_to_one(methods):
    _, _, _, tokens = _tiny()
    rec = MassRecorder()
    _run(methods, tokens, observer=rec)
    assert len(rec.masses) > 20
    np.testing.assert_allclose(rec.masses, 1.0, atol=1e-6)


def test_seed_hedge_mixture_sums_to_far_more_than_one():
    _, _, _, tokens = _tiny()
    rec = MassRecorder()
    r = _run(["sliding", "hedge"], tokens, observer=rec, sharpen=300.0)
    assert max(rec.masses) > 1.5  # the entropy expert adds w4·V·exp(−H)
    hedge = next(m for m in r.methods if m["method"] == "hedge")
    assert hedge["sum_p_mix_max"] > 1.5 and not hedge["legal_by_design"]


def test_trigram_bucket_hand_computed():
    assert trigram_bucket(0, 0, 65536) == 0
    assert trigram_bucket(1, 0, 65536) == 36313
    assert trigram_bucket(0, 1, 65536) == 27191
    assert trigram_bucket(3, 5, 65536) == (108939 ^ 135955) % 65536
    a = np.array([3, 0]), np.array([5, 1])
    assert trigram_bucket(*a, 65536).tolist() == [(108939 ^ 135955) % 65536, 27191]


def test_hedge_update_hand_computed():
    log_w = torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    nats = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [3.0, 2.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    out = hedge_update(log_w, nats, 0.1)
    assert out.tolist() == pytest.approx([1.8, -0.2, -0.2, -0.2, -0.3])
    w = torch.softmax(torch.tensor([2.0, 0, 0, 0, 0]), 0)
    assert w[0].item() == pytest.approx(0.649, abs=1e-3) and w[1].item() == pytest.approx(0.088, abs=1e-3)


def test_pipeline_leaves_the_callers_model_unchanged():
    preset, model, tables, tokens = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run_pipeline(model, tokens, tables, preset, Runtime(), ["sliding", "ttt"], overrides=OVERRIDES)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ["record-549", "seed-1150-ttt-slot", "seed-1207-hydra", "seed-1488-slot24",
                                  "seed-731-hedge", "seed-700-hedge-crownq"])
def test_every_seed_presets_evaluation_section_builds(name):
    """Each seed's declared eval methods and options are accepted as written (unknown keys would raise)."""
    from pgolf.job.preset import load_preset
    from pgolf.evaluate.methods.base import EvalContext
    from pgolf.evaluate.pipeline import build_methods

    preset = load_preset(name, ["evaluation.hedge.trigram_buckets=64"] if "hedge" in name else [])
    _, _, tables, tokens = _tiny()
    ctx = EvalContext(tokens=tokens, tables=tables, preset=preset, runtime=Runtime(), seq_len=preset.eval.seq_len)
    built = build_methods(preset.evaluation["methods"], ctx)
    assert {m.name for m in built.values()} >= set(preset.evaluation["methods"])
    if name in ("seed-1488-slot24", "seed-1207-hydra"):
        assert not all(m.legal for m in built.values())  # the seeds' illegal eval is reproduced and marked


def test_tempered_softmax_fixed_and_adaptive():
    from pgolf.evaluate.methods.temperature import tempered_softmax

    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    p, entropy, tau = tempered_softmax(logits, 0.5)
    assert torch.allclose(p, torch.softmax(logits.double() * 2, -1)) and (tau == 0.5).all()
    assert entropy[1].item() == pytest.approx(np.log(4))
    p, _, tau = tempered_softmax(logits, None)  # #700: τ = clamp(1 − 0.02·(1 − H/ln V), 0.9, 1.05)
    assert tau[1].item() == pytest.approx(1.0) and 0.98 < tau[0].item() < 1.0
    assert torch.allclose(p.sum(-1), torch.ones(2, dtype=torch.float64))
