"""The online n-gram model behind `hedge-normalized`: exact counts, causal, normalized; and the
mixer's gate on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.evaluate.ngram import CountTable, OnlineNgram, context_keys, prefix_counts
from pgolf.evaluate.pipeline import run_pipeline
from pgolf.runtime import Runtime
from tests.test_windows_pipeline import _tiny


def test_prefix_counts_and_count_table_hand_computed():
    assert prefix_counts(np.array([5, 3, 5, 5, 3, 9])).tolist() == [0, 0, 1, 2, 1, 0]
    table = CountTable()
    table.add(np.array([4, 2, 4]))
    table.add(np.array([4, 7]))
    assert table.lookup(np.array([4, 2, 7, 1, 99])).tolist() == [3, 1, 1, 0, 0]


def test_bigram_ladder_hand_computed():
    # stream 0 1 0 1 0, V = 2, a = 1, β = 1; position 2 (input 0, target 1): targets so far 1, 0.
    ng = OnlineNgram(np.array([0, 1, 0, 1, 0]), 2, 2, 1.0, 1.0)
    ng.extend_to(4)
    p_uni = (1 + 1) / (2 + 2)  # n(1) = 1 of 2 targets
    p_bi = (1 + 1 * p_uni) / (1 + 1)  # context 0 seen once, followed by 1
    assert ng.prob[2] == pytest.approx(p_bi)
    assert ng.prob[0] == pytest.approx(0.5)  # nothing counted yet: uniform


def test_context_keys_distinguish_histories_and_pad_the_start():
    x = np.array([3, 1, 3, 1, 2])
    k3 = context_keys(x, 0, 3, 4)
    assert k3[1] == k3[3] and k3[2] != k3[1] and k3[0] != k3[2]  # (3,1) twice; (−,3) ≠ (1,3)
    assert (context_keys(x, 0, 1, 4) == 0).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=3, max_size=120), st.integers(1, 5),
       st.lists(st.integers(1, 130), max_size=4))
def test_property_vectorised_counts_equal_brute_force_and_sum_to_one(stream, order, cuts):
    stream = np.array(stream)
    ng = OnlineNgram(stream, 6, order, 0.5, 1.0)
    for cut in sorted(cuts):  # any interleaving of extend and commit gives the same numbers
        ng.extend_to(cut)
        ng.commit(cut // 2 + cut % 3)
    ng.extend_to(stream.size)
    for t in range(stream.size - 1):
        full = ng.full_distribution(t)
        assert full.min() > 0 and math.isclose(full.sum(), 1.0, abs_tol=1e-12)
        assert math.isclose(full[stream[t + 1]], ng.prob[t], rel_tol=1e-12)


def test_hashed_contexts_stay_normalized():
    rng = np.random.default_rng(0)
    stream = rng.integers(0, 50, 300)
    ng = OnlineNgram(stream, 50, 14, 0.5, 1.0)  # 51^13·50 > 2^62: keys are hashed
    ng.extend_to(299)
    for t in (0, 150, 298):
        full = ng.full_distribution(t)
        assert math.isclose(full.sum(), 1.0, abs_tol=1e-12) and math.isclose(full[stream[t + 1]], ng.prob[t])


def test_future_tokens_never_change_earlier_probabilities():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 8, 200)
    b = a.copy()
    b[121:] = rng.integers(0, 8, 79)  # position t = 119 predicts a[120]; everything after changes
    pa, pb = OnlineNgram(a, 8, 4, 0.5, 1.0), OnlineNgram(b, 8, 4, 0.5, 1.0)
    pa.extend_to(199)
    pb.extend_to(199)
    assert np.array_equal(pa.prob[:120], pb.prob[:120])


def test_mixer_learns_from_repeats_and_beats_the_model_alone():
    """A stream that repeats itself: the n-gram counts, taken only from scored tokens, predict the
    second copy, and the gate learns to trust them."""
    preset, model, tables, tokens = _tiny()
    half = tokens[:1024].copy()
    stream = np.concatenate([half, half, half])
    over = {"sliding": {"stride": 64, "batch_windows": 8}, "hedge_normalized": {"chunk_tokens": 512}}
    alone = run_pipeline(model, stream, tables, preset, Runtime(), ["sliding"], overrides=over, keep_scores=True)
    mixed = run_pipeline(model, stream, tables, preset, Runtime(), ["sliding", "hedge-normalized"],
                         overrides=over, keep_scores=True)
    assert mixed.totals.bpb < 0.8 * alone.totals.bpb
    first = slice(0, 1023)  # nothing repeats yet: the mixer may not do much better there
    later = slice(1024, 3071)
    assert np.nanmean(mixed.scores[later]) < 0.3 * np.nanmean(alone.scores[later])
    assert np.nanmean(mixed.scores[first]) < np.nanmean(alone.scores[first]) + 0.5
    gate = next(m for m in mixed.methods if m["method"] == "hedge-normalized")
    assert gate["mean_lambda_neural"] < 0.8  # moved off its 0.8 start toward the n-gram expert


def test_bad_mixer_options_are_refused():
    from pgolf.errors import ConfigError

    preset, model, tables, tokens = _tiny()
    for bad in ({"lambda_init": 1.0}, {"order": 0}, {"no_such": 1}):
        with pytest.raises(ConfigError):
            run_pipeline(model, tokens, tables, preset, Runtime(), ["sliding", "hedge-normalized"],
                         overrides={"hedge_normalized": bad})


def test_mixer_reports_the_mass_it_samples():
    preset, model, tables, tokens = _tiny()
    r = run_pipeline(model, tokens, tables, preset, Runtime(), ["sliding", "hedge-normalized"],
                     overrides={"hedge_normalized": {"chunk_tokens": 256, "mass_every": 97}})
    mixer = next(m for m in r.methods if m["method"] == "hedge-normalized")
    assert mixer["sum_p_mix_max"] == pytest.approx(1.0, abs=1e-9)
    assert mixer["sum_p_mix_mean"] == pytest.approx(1.0, abs=1e-9)
