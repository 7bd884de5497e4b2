"""The audit is not fooled by methods that behave on its window and cheat elsewhere, nor by a
method whose reported distribution differs from what it scores (issue: audit blind spots)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pgolf.audit.checks import audit_pipeline, cut_points
from pgolf.audit.probe import normalization_probe
from pgolf.audit.stream import stream_recorder, stream_verdict
from pgolf.evaluate.pipeline import run_pipeline
from pgolf.runtime import Runtime
from tests.test_audit import AUDIT_OVERRIDES, LEGAL
from tests.test_windows_pipeline import _tiny


def _long_tiny(n_tokens: int, sharpen: float = 1.0):
    preset, model, tables, _ = _tiny()
    with torch.no_grad():
        model.tok_emb.weight.mul_(sharpen)
    tokens = np.random.default_rng(1).integers(0, preset.model.vocab_size, n_tokens).astype(np.uint16)
    return preset, model, tables, tokens


def _flag(result: dict, name: str) -> dict:
    return next(c for c in result["checks"] if c["name"] == name)


def _whole_stream(model, tokens, tables, preset, methods, overrides) -> dict:
    rec = stream_recorder(tokens.size - 1)
    run_pipeline(model, tokens, tables, preset, Runtime(), methods, overrides=overrides, observer=rec)
    return stream_verdict(rec, Runtime())


def test_seed_hedge_is_flagged_at_default_settings_past_its_warm_up():
    """No hedge overrides: min_tokens 10,000 and 32,768-token chunks, on a stream longer than the
    warm-up. The audit grows its window past the warm-up and shrinks the chunks, and says so."""
    preset, model, tables, tokens = _long_tiny(14_000, sharpen=300.0)
    r = audit_pipeline(model, tokens, tables, preset, Runtime(), ["sliding", "hedge"],
                       overrides={"sliding": {"stride": 32, "batch_windows": 16}}, cuts=1, probe_positions=1)
    assert r["tokens"] > 10_000, "the window must reach past hedge's warm-up"
    assert "normalization" in r["flagged"] and "normalization (black box)" in r["flagged"], r["checks"]
    coverage = _flag(r, "window coverage")
    assert coverage["passed"], coverage["detail"]
    assert "window grown" in coverage["detail"] and "chunk_tokens 32768 -> 2048" in coverage["detail"]
    assert _flag(r, "normalization")["evidence"][0]["position"] >= 10_000


def test_a_window_shorter_than_the_warm_up_refuses_to_pass():
    preset, model, tables, tokens = _long_tiny(9_000)
    r = audit_pipeline(model, tokens, tables, preset, Runtime(), ["sliding", "hedge"],
                       overrides={"sliding": {"stride": 32, "batch_windows": 16}}, cuts=1, window=8192,
                       probe_positions=0)
    coverage = _flag(r, "window coverage")
    assert not coverage["passed"] and "window too short to see hedge adapt" in coverage["detail"]
    assert r["verdict"] == "flagged"


@pytest.mark.parametrize("methods", LEGAL, ids=lambda m: "+".join(m))
def test_legal_methods_pass_the_black_box_probe_and_the_whole_stream_record(methods):
    preset, model, tables, tokens = _tiny()
    passed, detail, evidence, _, _ = normalization_probe(model, tokens, tables, preset, Runtime(), methods,
                                                         AUDIT_OVERRIDES, count=1)
    assert passed, detail
    verdict = _whole_stream(model, tokens, tables, preset, methods, AUDIT_OVERRIDES)
    assert verdict["verdict"] == "pass", verdict


def test_probe_scores_equal_full_reruns_of_the_pipeline():
    """The probe scores candidates from copied states; for a mixer and a TTT composition those
    scores equal a full rerun with the candidate written into the stream."""
    from pgolf.audit.probe import CandidateProbe
    from pgolf.audit.window import probe_settings

    preset, model, tables, tokens = _tiny()
    methods = ["sliding", "ttt", "hedge-normalized"]
    settings = probe_settings(preset, methods, AUDIT_OVERRIDES, 384, 64)
    t = 383
    stream = tokens[: t + 2].copy()
    probe = CandidateProbe(t, preset.model.vocab_size)
    run_pipeline(model, stream, tables, preset, Runtime(), methods, overrides=settings.overrides, observer=probe)
    for v in (0, 7, int(tokens[t + 1])):
        other = stream.copy()
        other[t + 1] = v
        full = run_pipeline(model, other, tables, preset, Runtime(), methods, overrides=settings.overrides,
                            keep_scores=True).scores[t]
        assert probe.scores[v] == pytest.approx(full, rel=1e-9)
    assert np.exp(-probe.scores).sum() == pytest.approx(1.0, abs=1e-9)


# fixture, options, the flags the window audit must raise (window of 512 targets; an empty set: the
# fixture evades the window entirely), the flags the whole-stream record must raise
EVASIVE = [
    ("illegal-late-unnormalized", {"illegal_late_unnormalized": {"chunk_tokens": 128, "start_tokens": 1024}},
     set(), {"normalization"}),
    ("illegal-late-train-first-ttt", {"illegal_late_ttt": {**AUDIT_OVERRIDES["ttt"], "chunk_tokens": 128}},
     {"score before adapt"}, set()),
    ("illegal-late-peek", {"illegal_late_peek": {"chunk_tokens": 128, "start_tokens": 1024}},
     set(), {"score before adapt"}),
    ("illegal-misreported-mixer", {"illegal_misreported_mixer": {"chunk_tokens": 128}},
     {"scored = reported", "normalization (black box)"}, {"scored = reported"}),
    ("illegal-byte-ppm", {"illegal_byte_ppm": {"chunk_tokens": 128}},
     {"normalization", "normalization (black box)"}, {"normalization"}),
]


@pytest.mark.parametrize("method,options,window_flags,stream_flags", EVASIVE, ids=lambda x: x if isinstance(x, str) else None)
def test_evasive_fixtures_are_caught(method, options, window_flags, stream_flags):
    preset, model, tables, tokens = _tiny()
    methods = ["sliding", method]
    over = {**AUDIT_OVERRIDES, **options}
    r = audit_pipeline(model, tokens[:513], tables, preset, Runtime(), methods, overrides=over, cuts=2)
    assert window_flags <= set(r["flagged"]) if window_flags else r["verdict"] == "pass", r["checks"]
    for name in window_flags - {"normalization (black box)"}:
        assert "position" in str(_flag(r, name)["evidence"][0]) or "used_from" in _flag(r, name)["evidence"][0]
    stream = _whole_stream(model, tokens, tables, preset, methods, over)
    assert stream_flags <= set(stream["flagged"]), stream
    for check in stream["checks"]:
        if check["name"] in stream_flags:
            ev = check["evidence"][0]
            where = ev.get("position", ev.get("used_from"))
            assert where is not None
            if method.startswith("illegal-late-") and method != "illegal-late-train-first-ttt":
                assert where >= 1024, "the misbehaviour starts at start_tokens and is caught there"


def test_misreported_mixer_passes_the_self_reported_sum_and_fails_the_probe():
    """(d): the sum of what it reports is 1, so only checks that do not take its word catch it."""
    preset, model, tables, tokens = _tiny()
    over = {**AUDIT_OVERRIDES, "illegal_misreported_mixer": {"chunk_tokens": 128}}
    r = audit_pipeline(model, tokens, tables, preset, Runtime(), ["sliding", "illegal-misreported-mixer"],
                       overrides=over, cuts=1)
    assert _flag(r, "normalization")["passed"]
    probe = _flag(r, "normalization (black box)")
    assert not probe["passed"] and probe["evidence"][0]["sum"] > 1.0


def test_cut_points_spread_over_the_window_and_after_the_last_update():
    points = cut_points(8000, 3, last_update=6000)
    assert len(points) == 3 and points[-1] > 6000 and points[0] < 4000
    assert all(0 <= p <= 7998 for p in cut_points(10, 5, last_update=9))
