"""Window planning (property tests) and the evaluation pipeline's parity with the reference scorer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from pgolf.job.preset import load_preset
from pgolf.data.bpb import TorchByteTables
from pgolf.data.tokenizer import ByteTables
from pgolf.errors import ConfigError
from pgolf.evaluate.pipeline import run_pipeline
from pgolf.data.scoring import evaluate_standard
from pgolf.evaluate.windows import sliding_windows, standard_windows
from pgolf.model.gpt import GPT
from pgolf.runtime import Runtime
from tests.conftest import TINY_OVERRIDES, TINY_VOCAB


@settings(max_examples=300, deadline=None)
@given(n=st.integers(2, 3000), seq_len=st.integers(1, 300), data=st.data())
def test_sliding_scores_every_target_exactly_once_in_order(n, seq_len, data):
    stride = data.draw(st.integers(1, seq_len))
    windows = sliding_windows(n, seq_len, stride)
    scored = [p for w in windows for p in w.scored]
    assert scored == list(range(n - 1))
    for w in windows:
        assert 0 <= w.score_from <= w.length <= seq_len and w.start + w.length <= n - 1
        if w.start > 0:  # every scored target after window 0 has >= T - S tokens of context
            assert w.score_from >= seq_len - stride


def test_legacy_tail_rescores_the_final_targets_like_the_records():
    # docs/techniques.md: at T=1024, S=64 the records count 960 extra token-scores.
    n = 100_000
    legacy = sliding_windows(n, 1024, 64, legacy_tail=True)
    extra = sum(len(w.scored) for w in legacy) - (n - 1)
    assert extra == 960
    assert sum(len(w.scored) for w in sliding_windows(n, 1024, 64)) == n - 1


def test_sliding_rejects_bad_stride():
    with pytest.raises(ConfigError):
        sliding_windows(100, 16, 0)
    with pytest.raises(ConfigError):
        sliding_windows(100, 16, 17)


def test_standard_windows_match_contest_usable_count():
    ws = standard_windows(1000, 64)
    assert sum(len(w.scored) for w in ws) == (999 // 64) * 64


def _tiny():
    preset = load_preset("cpu-mini", TINY_OVERRIDES)
    torch.manual_seed(0)
    model = GPT(preset.model)
    tables = TorchByteTables(ByteTables(base_bytes=np.arange(TINY_VOCAB) % 3 + 1,
                                        leading_space=np.arange(TINY_VOCAB) % 2 == 0,
                                        boundary=np.arange(TINY_VOCAB) % 5 == 0))
    tokens = np.random.default_rng(0).integers(0, TINY_VOCAB, 1500).astype(np.uint16)
    return preset, model, tables, tokens


def test_pipeline_standard_equals_reference_scorer():
    preset, model, tables, tokens = _tiny()
    got = run_pipeline(model, tokens, tables, preset, Runtime(), ["standard"]).totals
    ref = evaluate_standard(model, tokens, tables, preset.eval.seq_len, preset.eval.batch_tokens, Runtime())
    assert got.tokens == ref.tokens and got.bytes == ref.bytes
    assert got.nats == pytest.approx(ref.nats, rel=1e-9)


def test_pipeline_sliding_matches_per_window_reference():
    """Each scored target's nats equal a plain forward over exactly its window (no batching effects)."""
    preset, model, tables, tokens = _tiny()
    res = run_pipeline(model, tokens, tables, preset, Runtime(), ["sliding"],
                       overrides={"sliding": {"stride": 16, "batch_windows": 5}}, keep_scores=True)
    assert (res.score_counts == 1).all()
    T = preset.eval.seq_len
    with torch.no_grad():
        for w in sliding_windows(tokens.size, T, 16)[:: 7]:
            x = torch.from_numpy(tokens[w.start : w.start + w.length].astype(np.int64))[None]
            y = torch.from_numpy(tokens[w.start + 1 : w.start + w.length + 1].astype(np.int64))[None]
            nats = model(x, y, reduction="none")[0, w.score_from :].double().numpy()
            np.testing.assert_allclose(res.scores[list(w.scored)], nats, rtol=1e-5, atol=1e-6)
    assert res.methods[0]["stride"] == 16 and res.methods[0]["seq_len"] == T


def test_pipeline_rejects_two_window_methods_and_unknown_names():
    preset, model, tables, tokens = _tiny()
    with pytest.raises(ConfigError, match="both"):
        run_pipeline(model, tokens, tables, preset, Runtime(), ["standard", "sliding"])
    with pytest.raises(ConfigError, match="did you mean 'sliding'"):
        run_pipeline(model, tokens, tables, preset, Runtime(), ["slidng"])
    with pytest.raises(ConfigError, match="unknown key"):
        run_pipeline(model, tokens, tables, preset, Runtime(), ["sliding"], overrides={"sliding": {"strid": 3}})
