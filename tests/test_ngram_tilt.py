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
    tilt = _method("ngram-tilt", tokens, tables, preset)
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
    neutral = _method("ngram-tilt", tokens, tables, preset, boost=0.0)
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
    loose = _method("ngram-tilt", tokens, tables, preset, min_share=0.0)
    strict = _method("ngram-tilt", tokens, tables, preset, min_share=1.0)
    default = _method("ngram-tilt", tokens, tables, preset)
    assert strict.gated_positions <= default.gated_positions <= loose.gated_positions
    assert strict.gated_positions < loose.gated_positions


@pytest.mark.parametrize("name,verdict", [("ngram-tilt", "pass"), ("illegal-ngram-tilt-gated", "flagged")])
def test_audit_passes_the_tilt_and_flags_its_target_gated_twin(name, verdict):
    preset, model, tables, tokens = _tiny()
    r = audit_pipeline(model, tokens, tables, preset, Runtime(), ["sliding", name], cuts=2)
    assert r["verdict"] == verdict, r["checks"]
    if verdict == "flagged":  # by the checks of a distribution, and only by them
        assert r["flagged"] == ["scored = reported", "normalization (black box)"], r["checks"]
