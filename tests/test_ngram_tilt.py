"""The token-only n-gram tilt: its hints are the dictionary definition, computed causally; the tilted
distribution sums to one and is what it scores; with no boost it is the model; and the audit
passes it and flags its target-gated twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.audit.checks import audit_pipeline
from pgolf.evaluate.ngram_hints import causal_hints, reference_hints
from pgolf.runtime import Runtime
from tests.test_windows_pipeline import _tiny


@given(st.lists(st.integers(0, 5), min_size=2, max_size=300), st.integers(2, 7), st.integers(2, 3))
@settings(max_examples=80, deadline=None)
def test_hints_equal_the_dictionary_walk(stream, max_order, min_order):
    min_order = min(min_order, max_order)
    fast, slow = causal_hints(np.array(stream), max_order, min_order), reference_hints(stream, max_order, min_order)
    for field in ("token", "count", "seen", "order"):
        assert getattr(fast, field).tolist() == getattr(slow, field).tolist(), field


def test_a_hint_never_reads_its_target_or_anything_later():
    rng = np.random.default_rng(0)
    stream = rng.integers(0, 6, 500)
    base = causal_hints(stream, 8)
    for t in (10, 123, 400, 498):
        changed = stream.copy()
        changed[t + 1:] = (changed[t + 1:] + 1 + rng.integers(0, 4, changed.size - t - 1)) % 6
        other = causal_hints(changed, 8)
        for field in ("token", "count", "seen", "order"):
            assert (getattr(other, field)[: t + 1] == getattr(base, field)[: t + 1]).all()


def _method(name: str, tokens: np.ndarray, tables, preset, **options):
    from pgolf.evaluate.methods.base import EvalContext, load_methods

    cls = load_methods([name]).get(name)
    ctx = EvalContext(tokens=tokens, tables=tables, preset=preset, runtime=Runtime(), seq_len=64)
    return cls(options, ctx)


def test_the_tilt_is_a_distribution_it_scores_and_the_model_without_boost():
    preset, model, tables, tokens = _tiny()
    V = preset.model.vocab_size
    tilt = _method("ngram-tilt", tokens, tables, preset, min_order=2)  # random tokens: short contexts
    assert tilt.gated_positions > 0
    rng = np.random.default_rng(1)
    positions = np.sort(rng.choice(tokens.size - 1, 200, replace=False))
    logits = torch.randn(positions.size, V, dtype=torch.float64) * 3
    inputs = torch.from_numpy(tokens[positions].astype(np.int64))
    targets = torch.from_numpy(tokens[positions + 1].astype(np.int64))
    q = tilt.distribution(logits, inputs, positions)
    assert torch.allclose(q.sum(-1), torch.ones(positions.size, dtype=torch.float64), atol=1e-12)
    scores = tilt.score(logits, inputs, targets, positions)
    assert torch.allclose(scores, -torch.log(q.gather(1, targets[:, None]).squeeze(1)), atol=1e-10)
    hinted = tilt.hint[positions] >= 0
    assert hinted.any() and (~hinted).any()
    plain = -torch.log_softmax(logits, -1).gather(1, targets[:, None]).squeeze(1)
    assert torch.equal(scores[~hinted], plain[~hinted])
    neutral = _method("ngram-tilt", tokens, tables, preset, min_order=2, boost=0.0)
    assert torch.allclose(neutral.score(logits, inputs, targets, positions), plain, atol=1e-12)


def test_options_are_checked():
    from pgolf.errors import ConfigError

    preset, _, tables, tokens = _tiny()
    with pytest.raises(ConfigError, match="min_order"):
        _method("ngram-tilt", tokens, tables, preset, min_order=1)
    with pytest.raises(ConfigError, match="min_count"):
        _method("ngram-tilt", tokens, tables, preset, min_count=0)
    with pytest.raises(ConfigError, match="min_share"):
        _method("ngram-tilt", tokens, tables, preset, min_share=1.5)


def test_the_gate_reads_the_hints_share_of_its_context():
    preset, _, tables, tokens = _tiny()
    loose = _method("ngram-tilt", tokens, tables, preset, min_order=2, min_share=0.0)
    strict = _method("ngram-tilt", tokens, tables, preset, min_order=2, min_share=1.0)
    default = _method("ngram-tilt", tokens, tables, preset, min_order=2)
    assert strict.gated_positions <= default.gated_positions <= loose.gated_positions
    assert strict.gated_positions < loose.gated_positions


def _phrases(picks: list[int], noise: list[int]) -> np.ndarray:
    """A stream of 20-token phrases (so 15-token contexts recur), each followed by one noise token."""
    phrases = np.random.default_rng(7).integers(0, 40, (4, 20))
    return np.concatenate([np.r_[phrases[p], 40 + n] for p, n in zip(picks, noise)]).astype(np.uint16)


def _fixed_context_walk(stream: np.ndarray, ctx_len: int, threshold: float) -> np.ndarray:
    """#2135's token expert written out: for each target, the 15 tokens before it as one context; its
    leader changes only on a strictly larger pair count; gated where leader count / total, in
    float32, reaches the threshold. −1 where there is no gated hint."""
    table: dict[tuple, dict] = {}
    out = np.full(stream.size - 1, -1, np.int64)
    for i in range(1, stream.size):
        if i < ctx_len:
            continue
        ctx = tuple(stream[i - ctx_len: i].tolist())
        entry = table.get(ctx)
        if entry is not None and np.float32(entry["top"]) / np.float32(entry["total"]) >= np.float32(threshold):
            out[i - 1] = entry["tok"]
        tok = int(stream[i])
        if entry is None:
            table[ctx] = entry = {"pairs": {}, "total": 0, "top": 0, "tok": tok}
        entry["total"] += 1
        entry["pairs"][tok] = entry["pairs"].get(tok, 0) + 1
        if entry["pairs"][tok] > entry["top"]:
            entry["top"], entry["tok"] = entry["pairs"][tok], tok
    return out


@given(st.lists(st.integers(0, 3), min_size=3, max_size=40), st.data(), st.sampled_from([0.5, 0.8, 1.0]))
@settings(max_examples=30, deadline=None)
def test_a_single_order_is_the_records_fixed_context_expert(picks, data, share):
    noise = data.draw(st.lists(st.integers(0, 1), min_size=len(picks), max_size=len(picks)))
    stream = _phrases(picks, noise)
    preset, _, tables, _ = _tiny()
    tilt = _method("ngram-tilt", stream, tables, preset, min_share=share)
    assert tilt.hint.numpy().tolist() == _fixed_context_walk(stream, 15, share).tolist()


def test_the_default_is_the_records_order_16_alone():
    from pgolf.evaluate.methods.ngram_tilt import NgramTiltOptions

    assert (NgramTiltOptions().min_order, NgramTiltOptions().max_order) == (16, 16)
    stream = _phrases([0, 1, 0, 2, 1, 0, 3, 3, 0, 1] * 3, [0, 1] * 15)
    preset, _, tables, _ = _tiny()
    tilt = _method("ngram-tilt", stream, tables, preset)
    on = tilt.hint.numpy() >= 0
    assert tilt.gated_positions > 0 and (tilt.hints.order[on] == 16).all()
    backed_off = _method("ngram-tilt", stream, tables, preset, min_order=2)
    assert backed_off.gated_positions > tilt.gated_positions


@pytest.mark.parametrize("name,verdict,options", [("ngram-tilt", "pass", {}), ("ngram-tilt", "pass", {"min_order": 2}),
                                                  ("illegal-ngram-tilt-gated", "flagged", {})])
def test_audit_passes_the_tilt_and_flags_its_target_gated_twin(name, verdict, options):
    preset, model, tables, tokens = _tiny()
    if name == "ngram-tilt" and not options:  # default order 16: a stream whose long contexts recur
        tokens = _phrases([0, 1, 2, 3, 0, 2, 1, 3] * 8, [0, 1, 1, 0] * 16)
    over = {name.replace("-", "_"): options} if options else None
    r = audit_pipeline(model, tokens, tables, preset, Runtime(), ["sliding", name], overrides=over, cuts=2)
    assert r["verdict"] == verdict, r["checks"]
    if verdict == "flagged":  # by the checks of a distribution, and only by them
        assert r["flagged"] == ["scored = reported", "normalization (black box)"], r["checks"]
