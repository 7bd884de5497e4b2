"""Document windows, document-independent batched LoRA TTT, phased global SGD and the illegal
validation warm-up: coverage, causality, once-only, normalization, independence, the audit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.audit.checks import audit_pipeline
from pgolf.audit.recorder import AuditRecorder
from pgolf.evaluate.methods.lora_ttt import SlotAdamW
from pgolf.evaluate.pipeline import run_pipeline
from pgolf.evaluate.windows import document_starts, document_windows, short_batch_chunks
from pgolf.runtime import Runtime
from tests.test_eval_methods import OVERRIDES, MassRecorder
from tests.test_windows_pipeline import _tiny

BOS = 1
DOC_OVERRIDES = {**OVERRIDES,
                 "doc_sliding": {"chunk_tokens": 16, "batch_docs": 4},
                 "lora_ttt": {"rank": 4, "alpha": 8.0, "lr": 0.01, "warmup_steps": 1},
                 "illegal_val_warmup": {"rank": 4, "alpha": 8.0, "lr": 0.01, "warmup_steps": 3,
                                        "warmup_tokens": 1024},
                 "phased": {"phases": 2, "prefix_docs": 6, "chunk_tokens": 256, "lr": 0.05}}
LEGAL = [["doc-sliding"], ["doc-sliding", "lora-ttt"], ["doc-sliding", "lora-ttt", "phased"], ["sliding", "phased"],
         ["doc-sliding", "lora-ttt", "phased", "hedge-normalized"]]


def _docs_stream(n: int = 1500, docs: int = 14, seed: int = 3) -> np.ndarray:
    """The tiny stream with BOS only at `docs` chosen document starts (position 0 one of them)."""
    tokens = _tiny()[3].copy()[:n]
    tokens[tokens == BOS] = 2
    rng = np.random.default_rng(seed)
    tokens[np.concatenate([[0], np.sort(rng.choice(np.arange(8, n - 8), docs - 1, replace=False))])] = BOS
    return tokens


def _run(methods, tokens, observer=None, over=None, keep_scores=True, **options):
    preset, model, tables, _ = _tiny()
    o = {k: dict(v) for k, v in DOC_OVERRIDES.items()}
    for k, v in (over or {}).items():
        o.setdefault(k, {}).update(v)
    return run_pipeline(model, tokens, tables, preset, Runtime(), methods, overrides=o,
                        keep_scores=keep_scores, observer=observer, **options)


def _perturbed(tokens, after, seed=1):
    out = tokens.copy()
    out[after + 1 :] = np.random.default_rng(seed).integers(0, 256, out.size - after - 1)
    return out


# document windows -------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), bos=st.lists(st.integers(0, 299), max_size=20), seq=st.integers(1, 40),
       chunk=st.integers(1, 40), batch=st.integers(1, 6))
def test_document_windows_score_every_target_once_inside_its_document(n, bos, seq, chunk, batch):
    chunk = min(chunk, seq)
    tokens = np.full(n, 7, dtype=np.uint16)
    tokens[[b for b in bos if b < n]] = BOS
    windows = document_windows(tokens, BOS, seq, chunk, batch)
    starts = document_starts(tokens[: n - 1], BOS)
    counts = np.zeros(n - 1, dtype=int)
    last_in_doc: dict[int, int] = {}
    for w in windows:
        assert 1 <= w.length <= seq and 0 <= w.score_from < w.length
        doc_lo = starts[w.doc]
        doc_hi = starts[w.doc + 1] if w.doc + 1 < starts.size else n - 1
        assert doc_lo <= w.start and w.start + w.length <= doc_hi  # context never leaves the document
        assert w.length - w.score_from <= chunk
        first = w.start + w.score_from
        assert first > last_in_doc.get(w.doc, -1)  # a document's chunks in order
        last_in_doc[w.doc] = w.start + w.length - 1
        counts[w.start + w.score_from : w.start + w.length] += 1
        assert w.doc // batch == max(ws.doc for ws in windows if ws.group == w.group) // batch  # one batch a group
    assert (counts == 1).all()
    groups = [w.group for w in windows]
    assert groups == sorted(groups)


def test_recorder_checks_order_per_document():
    rec = AuditRecorder(20)
    rec.on_documents(starts=np.array([0, 10]))
    rec.on_scored(positions=np.array([0, 1, 10, 11]))
    rec.on_scored(positions=np.array([2, 3, 12]))  # documents interleave: fine
    assert rec.order_ok
    rec.on_scored(positions=np.array([1]))  # back inside document 0
    assert not rec.order_ok


# the methods ---------------------------------------------------------------------------------------
STREAM = {"doc_sliding": {"order": "stream"}}


@pytest.mark.parametrize("methods", LEGAL, ids=lambda m: "+".join(m))
def test_causality_future_tokens_never_change_past_scores(methods):
    """In stream order: a score depends only on earlier tokens of the stream."""
    tokens = _docs_stream()
    base = _run(methods, tokens, over=STREAM)
    for cut in (300, 777, 1100):
        other = _run(methods, _perturbed(tokens, cut + 1), over=STREAM)
        scored = ~np.isnan(base.scores[: cut + 1])
        np.testing.assert_allclose(other.scores[: cut + 1][scored], base.scores[: cut + 1][scored], rtol=1e-6, atol=1e-7)


def _view(tokens, batch_docs=4):
    from pgolf.evaluate.order import evaluation_view

    return evaluation_view(tokens, BOS, "longest-first", batch_docs)


def _run_view(methods, view_tokens, layout):
    preset, model, tables, _ = _tiny()
    o = {k: dict(v) for k, v in DOC_OVERRIDES.items()}
    o["doc_sliding"]["order"] = "stream"
    return run_pipeline(model, view_tokens, tables, preset, Runtime(), methods, overrides=o, keep_scores=True,
                        layout=layout)


@pytest.mark.parametrize("methods", [m for m in LEGAL if m[0] == "doc-sliding"], ids=lambda m: "+".join(m))
def test_longest_first_is_a_left_to_right_pass_over_its_view(methods):
    """The default order scores the documents re-laid longest first: exactly a stream-order pass
    over that view, its scores returned at their original positions."""
    tokens = _docs_stream()
    view = _view(tokens)
    assert not np.array_equal(view.tokens, tokens) and sorted(view.source.tolist()) == list(range(tokens.size))
    default = _run(methods, tokens)
    inner = _run_view(methods, view.tokens, view.layout)
    np.testing.assert_array_equal(default.scores[view.source[:-1]], inner.scores)
    assert default.totals == inner.totals
    assert next(m for m in default.methods if m["role"] == "windows")["order"] == "longest-first"


@pytest.mark.parametrize("methods", [m for m in LEGAL if m[0] == "doc-sliding" and len(m) > 1],
                         ids=lambda m: "+".join(m))
def test_causality_in_the_longest_first_order(methods):
    """In its own order the default pass is causal: tokens scored later never change earlier scores."""
    view = _view(_docs_stream())
    base = _run_view(methods, view.tokens, view.layout)
    for cut in (300, 777, 1100):
        other = _run_view(methods, _perturbed(view.tokens, cut + 1), view.layout)
        np.testing.assert_allclose(other.scores[: cut + 1], base.scores[: cut + 1], rtol=1e-6, atol=1e-7)


def _record_queue(lengths, batch_docs):
    """#1855's _build_ttt_global_batches, restated: ascending stable sort by length, batches of
    batch_docs, batches by descending longest document (stable)."""
    entries = sorted(enumerate(lengths), key=lambda e: e[1])
    batches = [entries[i : i + batch_docs] for i in range(0, len(entries), batch_docs)]
    batches = sorted(batches, key=lambda b: -max(length for _, length in b))
    return [d for b in batches for d, _ in b]


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 30), min_size=2, max_size=25), batch=st.integers(1, 6),
       tail=st.integers(1, 30))
def test_longest_first_view_is_the_records_queue_and_keeps_every_target(lengths, batch, tail):
    """Documents (BOS + length-1 tokens, each followed by a BOS) in the record's queue order, the
    stream's final document last; every target keeps its input and its target token."""
    rng = np.random.default_rng(len(lengths))
    docs = [np.concatenate([[BOS], rng.integers(2, 50, n)]) for n in lengths + [tail]]
    tokens = np.concatenate(docs).astype(np.uint16)
    view = _view(tokens, batch)
    starts = document_starts(view.tokens[:-1], BOS)
    order = [int(np.searchsorted(np.cumsum([0] + [d.size for d in docs]), view.source[s], side="right") - 1)
             for s in starts]
    assert order == _record_queue([d.size for d in docs[:-1]], batch) + [len(docs) - 1]
    src = view.source
    # a target of the view is (input, next token) of the original, at the original position src[p]
    np.testing.assert_array_equal(view.tokens[:-1], tokens[src[:-1]])
    np.testing.assert_array_equal(view.tokens[1:], tokens[src[:-1] + 1])
    assert src[-1] == tokens.size - 1


def test_longest_first_order_reads_document_lengths_only():
    tokens = _docs_stream()
    view = _view(tokens)
    other = tokens.copy()
    inside = tokens != BOS
    other[inside] = np.random.default_rng(2).integers(2, 256, inside.sum())
    np.testing.assert_array_equal(_view(other).source, view.source)  # new content, same lengths: same order
    moved = tokens.copy()
    b = np.flatnonzero(tokens == BOS)[3]
    moved[b], moved[b + 5] = 7, BOS  # one document 5 tokens longer, its neighbour shorter
    assert not np.array_equal(_view(moved).source, view.source)


@pytest.mark.parametrize("methods", LEGAL, ids=lambda m: "+".join(m))
def test_every_target_scored_exactly_once(methods):
    r = _run(methods, _docs_stream())
    assert (r.score_counts == 1).all() and r.totals.tokens == r.score_counts.size


@pytest.mark.parametrize("methods", LEGAL, ids=lambda m: "+".join(m))
def test_scored_distribution_sums_to_one(methods):
    rec = MassRecorder()
    _run(methods, _docs_stream(), observer=rec)
    assert len(rec.masses) > 20
    np.testing.assert_allclose(rec.masses, 1.0, atol=1e-6)


def test_doc_sliding_scores_each_chunk_from_its_own_document_only():
    """A target's score equals a plain forward over its document's prefix (≤ seq_len tokens)."""
    preset, model, _, _ = _tiny()
    tokens = _docs_stream()
    r = _run(["doc-sliding"], tokens)
    starts = document_starts(tokens[:-1], BOS)
    T = preset.eval.seq_len
    for p in (0, 5, 17, 400, 901, 1497):
        d = np.searchsorted(starts, p, side="right") - 1
        chunk_end = starts[d] + ((p - starts[d]) // 16 + 1) * 16
        end = min(chunk_end, starts[d + 1] if d + 1 < starts.size else tokens.size - 1)
        begin = max(starts[d], end - T)
        x = torch.from_numpy(tokens[begin:end].astype(np.int64))[None]
        with torch.no_grad():
            logp = torch.log_softmax(model(x)[0, p - begin].double(), -1)
        assert r.scores[p] == pytest.approx(-logp[int(tokens[p + 1])].item(), rel=1e-5)


@pytest.mark.parametrize("reset", ["batch", "document"])
def test_lora_documents_in_one_batch_are_independent(reset):
    """Changing one document never changes another document's scores in the same batch."""
    tokens = _docs_stream()
    starts = document_starts(tokens[:-1], BOS)
    over = {**STREAM, "lora_ttt": {"reset": reset}}
    base = _run(["doc-sliding", "lora-ttt"], tokens, over=over)
    other = tokens.copy()
    lo, hi = starts[2], starts[3]  # document 2 of batch 0 (documents 0..3)
    other[lo + 1 : hi] = np.random.default_rng(9).integers(2, 256, hi - lo - 1)
    changed = _run(["doc-sliding", "lora-ttt"], other, over=over)
    for d in (0, 1, 3):
        a, b = starts[d], starts[d + 1]
        np.testing.assert_array_equal(changed.scores[a:b], base.scores[a:b])
    assert not np.allclose(changed.scores[lo:hi], base.scores[lo:hi])


def test_lora_first_chunk_is_the_base_model_and_later_chunks_adapt():
    tokens = _docs_stream()
    plain = _run(["doc-sliding"], tokens)
    lora = _run(["doc-sliding", "lora-ttt"], tokens)
    starts = document_starts(tokens[:-1], BOS)
    first = np.concatenate([np.arange(s, min(s + 16, tokens.size - 1)) for s in starts])
    np.testing.assert_allclose(lora.scores[first], plain.scores[first], rtol=1e-5)
    later = np.setdiff1d(np.arange(tokens.size - 1), first)
    assert np.abs(lora.scores[later] - plain.scores[later]).max() > 1e-4
    zero = _run(["doc-sliding", "lora-ttt"], tokens, over={"lora_ttt": {"lr": 0.0, "weight_decay": 0.0}})
    np.testing.assert_allclose(zero.scores, plain.scores, rtol=1e-5)  # lr 0: exactly the backbone


def test_lora_warmup_on_random_tokens_leaves_no_trace_and_is_timed_apart():
    tokens = _docs_stream()
    none = _run(["doc-sliding", "lora-ttt"], tokens, over={"lora_ttt": {"warmup_steps": 0}})
    warm = _run(["doc-sliding", "lora-ttt"], tokens, over={"lora_ttt": {"warmup_steps": 3}})
    np.testing.assert_array_equal(warm.scores, none.scores)
    assert warm.extra["setup_seconds"] > 0
    assert warm.extra["eval_seconds_without_setup"] == pytest.approx(warm.seconds - warm.extra["setup_seconds"])


def test_lora_needs_document_windows():
    from pgolf.errors import ConfigError

    with pytest.raises(ConfigError, match="doc-sliding"):
        _run(["sliding", "lora-ttt"], _docs_stream())


def test_slot_adamw_matches_torch_adamw_per_slot():
    """Each slot follows torch's AdamW exactly, with its own step count; other slots stay put."""
    torch.manual_seed(0)
    p = torch.randn(3, 4, 5)
    ref = [p[s].clone().requires_grad_() for s in range(3)]
    opts = [torch.optim.AdamW([r], lr=0.01, betas=(0.0, 0.99), eps=1e-10, weight_decay=0.5) for r in ref]
    mine = SlotAdamW([p], 3, 0.01, [0.0, 0.99], 1e-10, 0.5)
    schedule = [[0, 1], [1], [0, 2], [2], [0, 1, 2]]
    for k, active in enumerate(schedule):
        grads = torch.randn(3, 4, 5)
        idx = torch.tensor(active)
        rows = p[idx].clone().requires_grad_()
        rows.grad = grads[idx].clone()
        mine.step(idx, [rows])
        for s in active:
            ref[s].grad = grads[s].clone()
            opts[s].step()
    for s in range(3):
        torch.testing.assert_close(p[s], ref[s].detach(), rtol=1e-5, atol=1e-7)


class UpdateLog:
    """Records each update with whether every target it used had been scored at that moment."""

    def __init__(self, n: int) -> None:
        self.scored = np.zeros(n, dtype=bool)
        self.updates: list[dict] = []

    def on_scored(self, positions, **_) -> None:
        self.scored[np.asarray(positions)] = True

    def on_update(self, method, state, spans, used_from) -> None:
        self.updates.append({"method": method, "spans": spans, "used_from": used_from,
                             "all_scored": all(self.scored[a:b].all() for a, b in spans)})


@pytest.mark.parametrize("order", ["stream", "longest-first"])
def test_phased_trains_only_on_fully_scored_documents_at_batch_boundaries(order):
    """Phases end at ⌊k·P/phases⌋ documents (P = 6, 2 phases: 3 and 6), wait for the end of their
    batch (stream order: batches of 4, cuts after 4 and 8 documents; the record's queue of 13 sorted
    documents: its short batch of the longest one first, then batches of 4 — cuts after 5 and 9),
    and train on that many scored documents, shortest first."""
    tokens = _docs_stream()
    log = UpdateLog(tokens.size - 1)
    r = _run(["doc-sliding", "phased"], tokens, observer=log, over={"doc_sliding": {"order": order}})
    scored = _view(tokens).tokens if order == "longest-first" else tokens
    if order == "longest-first":
        assert _view(tokens).batch_sizes.tolist() == [1, 4, 4, 4, 1]  # the final document: last, alone
    starts = document_starts(scored[:-1], BOS)
    ends = np.append(starts[1:], scored.size - 1)
    cuts = (4, 8) if order == "stream" else (5, 9)
    updates = [u for u in log.updates if u["method"] == "phased"]
    assert [u["used_from"] for u in updates] == [int(starts[c]) for c in cuts]
    for u, count, cut in zip(updates, (3, 6), cuts):
        docs = [int(np.searchsorted(starts, a)) for a, _ in u["spans"]]
        assert len(docs) == count and all(u["spans"][i] == (starts[d], ends[d]) for i, d in enumerate(docs))
        assert all(d < cut for d in docs) and u["all_scored"]
        lengths = [int(ends[d] - starts[d]) for d in docs]
        if order == "longest-first":  # the shortest of the scored documents, shortest first
            assert lengths == sorted(lengths)
        else:
            assert docs == list(range(count))
    described = next(m for m in r.methods if m["method"] == "phased")
    assert described["phases_done"] == 2 and [t["documents"] for t in described["trained"]] == [3, 6]


def test_phased_pass_skips_its_last_chunk_and_takes_a_new_optimizer_each_phase():
    """The record's pass: chunks of chunk_tokens, the last one untrained, one SGD step per chunk
    (its sequences fit one forward), a fresh SGD per phase; the earlier rule as options."""
    tokens = _docs_stream()

    def steps(**options):  # sequences of 16: every chunk, the last included, holds one
        r = _run(["doc-sliding", "phased"], tokens, over={"phased": {"chunk_tokens": 64, "seq_len": 16, **options}})
        d = next(m for m in r.methods if m["method"] == "phased")
        return d["steps"], d["trained"]

    record, trained = steps()

    def with_a_sequence(targets: int, skip_last: bool) -> int:  # chunks holding one whole sequence or more
        n = -(-targets // 64)
        return sum((min((c + 1) * 64, targets) - c * 64) >= 16 for c in range(n - 1 if skip_last else n))

    assert record == sum(with_a_sequence(t["tokens"] - 1, True) for t in trained) > 0
    every, _ = steps(skip_last_chunk=False)
    assert every == sum(with_a_sequence(t["tokens"] - 1, False) for t in trained) > record
    tokens_seen = _run(["doc-sliding", "phased"], tokens, over={"phased": {"chunk_tokens": 64}})
    carried = _run(["doc-sliding", "phased"], tokens, over={"phased": {"chunk_tokens": 64, "fresh_optimizer": False}})
    assert not np.allclose(tokens_seen.scores, carried.scores)  # momentum kept across phases moves later scores


# the audit ---------------------------------------------------------------------------------------
def _audit(methods):
    preset, model, tables, _ = _tiny()
    over = {k: dict(v) for k, v in DOC_OVERRIDES.items()}
    return audit_pipeline(model, _docs_stream(), tables, preset, Runtime(), methods, overrides=over, cuts=2)


@pytest.mark.parametrize("methods", [["doc-sliding", "lora-ttt"], ["doc-sliding", "lora-ttt", "phased"]],
                         ids=lambda m: "+".join(m))
def test_audit_passes_lora_and_phased_ttt(methods):
    r = _audit(methods)
    assert r["verdict"] == "pass", [c["detail"] for c in r["checks"] if not c["passed"]]


def test_audit_flags_a_warmup_on_validation_tokens():
    r = _audit(["doc-sliding", "illegal-val-warmup-lora-ttt"])
    assert "score before adapt" in r["flagged"], r["checks"]
    check = next(c for c in r["checks"] if c["name"] == "score before adapt")
    assert check["evidence"] and check["evidence"][0]["state"] == "adapters (warm-up)"


@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_lockstep_adamw_equals_one_dense_adamw_step_per_chunk_over_the_batch(beta1):
    """#1855's batch optimizer: torch's AdamW over the whole (slot, …) tensor, one step per chunk,
    zero gradients for slots whose document does not train at that chunk; pgolf's per-slot version
    (updates paid at the slot's next chunk, decay-only steps at the batch's end) lands on the same
    values, batch after batch (the adapters carry over: a warm A)."""
    from pgolf.evaluate.methods.lora_ttt import LockstepAdamW

    torch.manual_seed(0)
    lengths = [[3, 5, 1, 4], [2, 2, 6, 1]]  # chunks of each slot's document, two batches
    p = torch.randn(4, 3, 5)
    ref = p.clone().requires_grad_()
    mine = SlotAdamW([p], 4, 0.01, [beta1, 0.99], 1e-10, 0.5)
    lock = LockstepAdamW(mine)
    for batch in lengths:
        dense = torch.optim.AdamW([ref], lr=0.01, betas=(beta1, 0.99), eps=1e-10, weight_decay=0.5)
        lock.start()
        for c in range(max(batch)):
            scoring = torch.tensor([s for s in range(4) if c < batch[s]])
            lock.pay(scoring)  # before chunk c is scored
            training = [s for s in range(4) if c < batch[s] - 1]  # a document's last chunk does not train
            if not training:
                continue
            g = torch.randn(4, 3, 5)
            mask = torch.zeros(4, 1, 1)
            mask[training] = 1
            ref.grad = g * mask
            dense.step()
            idx = torch.tensor(training)
            lock.owe(idx, [g[idx]])
        lock.finish()
        torch.testing.assert_close(p, ref.detach(), rtol=1e-5, atol=1e-6)


def test_a_short_batch_of_the_queue_hands_no_adapters_on():
    """The record's queue scores its one short batch (the longest documents) first with a LoRA of
    its own: what it learns reaches no later batch, while a full batch's A carries on (warm start)."""
    tokens = _docs_stream()
    view = _view(tokens)
    assert view.batch_sizes[0] == 1  # the longest document, alone
    base = _run_view(["doc-sliding", "lora-ttt"], view.tokens, view.layout)
    starts = document_starts(view.tokens[:-1], BOS)

    def changed(doc):
        other = view.tokens.copy()
        lo, hi = starts[doc] + 1, starts[doc + 1]
        other[lo:hi] = np.random.default_rng(doc).integers(2, 256, hi - lo)
        return _run_view(["doc-sliding", "lora-ttt"], other, view.layout)

    later = slice(int(starts[5]), None)  # batches 2.. (documents 5 on)
    np.testing.assert_array_equal(changed(0).scores[later], base.scores[later])  # the short batch
    assert not np.array_equal(changed(1).scores[later], base.scores[later])  # a full batch's A carries on


# short-document score-first chunks (#2014) -------------------------------------------------------
SHORT = [[40, 4], [120, 8]]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), bos=st.lists(st.integers(0, 399), max_size=20), batch=st.integers(1, 5))
def test_short_chunks_cut_each_batch_by_its_longest_document_and_score_every_target_once(n, bos, batch):
    tokens = np.full(n, 7, dtype=np.uint16)
    tokens[[b for b in bos if b < n]] = BOS
    windows = document_windows(tokens, BOS, 32, 16, batch,
                               batch_chunks=short_batch_chunks(tokens, BOS, 16, batch, None, SHORT))
    starts = document_starts(tokens[: n - 1], BOS)
    ends = np.append(starts[1:], n - 1)
    counts = np.zeros(n - 1, dtype=int)
    for w in windows:
        docs = range(w.batch * batch, min((w.batch + 1) * batch, starts.size))
        longest = max(int(ends[d] - starts[d]) for d in docs)
        # the first step that holds it; the record's length is the targets and one
        chunk = 4 if longest + 1 <= 40 else 8 if longest + 1 <= 120 else 16
        assert w.length - w.score_from <= chunk
        # every chunk but a document's last is whole: the cut is the batch's, not a document's
        if w.start + w.length < ends[w.doc]:
            assert w.length - w.score_from == chunk
        counts[w.start + w.score_from : w.start + w.length] += 1
    assert (counts == 1).all()


def test_short_chunks_that_hold_no_batch_change_no_window():
    tokens = _docs_stream()  # 14 documents in 1,500 tokens, none shorter than 8 tokens
    plain = document_windows(tokens, BOS, 64, 16, 4)
    for steps in ([[4, 2]], []):  # no document that short; no steps
        chunks = short_batch_chunks(tokens, BOS, 16, 4, None, steps)
        assert (chunks == 16).all() and document_windows(tokens, BOS, 64, 16, 4, batch_chunks=chunks) == plain


def test_short_chunks_are_checked_when_the_preset_loads():
    from pgolf.errors import ConfigError
    from pgolf.job.preset import load_preset

    for bad in ("[[2000, 24], [256, 8]]", "[[256, 0]]", "[[256]]"):
        with pytest.raises(ConfigError, match="short_chunks"):
            load_preset("cpu-mini", [f"evaluation.doc_sliding.short_chunks={bad}"])


SHORT_OVER = {**STREAM, "doc_sliding": {"order": "stream", "short_chunks": [[150, 4], [400, 8]]}}


def _content_perturbed(tokens, after, seed=1):
    """Every token after `after` drawn anew, BOS positions kept: the documents' lengths stay."""
    out = tokens.copy()
    tail = out[after + 1 :]
    draw = np.random.default_rng(seed).integers(2, 256, tail.size)
    out[after + 1 :] = np.where(tail == BOS, BOS, draw)
    return out


@pytest.mark.parametrize("methods", [["doc-sliding", "lora-ttt"], ["doc-sliding", "lora-ttt", "phased"]],
                         ids=lambda m: "+".join(m))
def test_short_chunks_keep_scores_causal_and_take_more_adaptation_steps(methods):
    """A batch's chunk is chosen by its longest document's length, as the longest-first queue is:
    a score may depend on documents' lengths (where the BOS tokens are), never on a later token."""
    tokens = _docs_stream()
    base = _run(methods, tokens, over=SHORT_OVER)
    coarse = _run(methods, tokens, over=STREAM)
    assert base.scores.shape == coarse.scores.shape and not np.array_equal(base.scores, coarse.scores)
    for cut in (300, 1100):
        other = _run(methods, _content_perturbed(tokens, cut + 1), over=SHORT_OVER)
        scored = ~np.isnan(base.scores[: cut + 1])
        np.testing.assert_allclose(other.scores[: cut + 1][scored], base.scores[: cut + 1][scored], rtol=1e-6, atol=1e-7)


def test_audit_passes_lora_ttt_with_short_chunks():
    preset, model, tables, _ = _tiny()
    over = {k: dict(v) for k, v in DOC_OVERRIDES.items()}
    over["doc_sliding"]["short_chunks"] = [[150, 4], [400, 8]]
    r = audit_pipeline(model, _docs_stream(), tables, preset, Runtime(), ["doc-sliding", "lora-ttt"], overrides=over, cuts=2)
    assert r["verdict"] == "pass", [c["detail"] for c in r["checks"] if not c["passed"]]
    order = next(c for c in r["checks"] if c["name"] == "evaluation order")
    assert "each batch's chunk is chosen by its longest document's length" in order["detail"]


def test_phased_global_sgd_trains_the_asym_logit_caps_as_the_records_global_ttt(monkeypatch):
    """#2135's global TTT steps every weight of the model, its two AsymLogit caps included; so does
    the phased method's SGD (the per-document LoRA adapts only its adapters)."""
    from pgolf.evaluate.methods.phased import PhasedTTT
    from pgolf.job.preset import load_preset
    from pgolf.model.gpt import GPT
    from tests.conftest import TINY_OVERRIDES

    preset = load_preset("cpu-mini", [*TINY_OVERRIDES, "model.addons.asym_logit.init=0.0"])
    torch.manual_seed(0)
    model = GPT(preset.model)
    with torch.no_grad():  # logits near the caps, where the caps' gradient is not lost in float32
        model.tok_emb.weight.mul_(400)
    _, _, tables, _ = _tiny()
    caps: list[tuple[float, float]] = []
    original = PhasedTTT._one_pass

    def watched(self, m, stream, params):
        cap = m.addons["asym_logit"]
        assert any(p is cap.pos_cap for p in params) and any(p is cap.neg_cap for p in params)
        before = (float(cap.pos_cap), float(cap.neg_cap))
        out = original(self, m, stream, params)
        caps.append((before, (float(cap.pos_cap), float(cap.neg_cap))))
        return out

    monkeypatch.setattr(PhasedTTT, "_one_pass", watched)
    o = {k: dict(v) for k, v in DOC_OVERRIDES.items()}
    run_pipeline(model, _docs_stream(), tables, preset, Runtime(), ["doc-sliding", "lora-ttt", "phased"], overrides=o)
    assert caps and all(before != after for before, after in caps)
    assert float(model.addons["asym_logit"].pos_cap) == preset.model.logit_softcap  # the caller's copy kept


@pytest.mark.parametrize("methods", [["sliding", "ttt"], ["doc-sliding", "lora-ttt", "phased"],
                                     ["sliding", "slot"], ["doc-sliding", "lora-ttt", "phased", "hedge-normalized"]],
                         ids=lambda m: "+".join(m))
def test_a_pass_scored_through_t_has_the_full_passes_scores_up_to_t_and_stops_there(methods):
    """The audit's reruns stop once every score up to the cut is final: those scores equal the full
    pass's exactly (illegal SLOT included: it fits inside the chunk it scores, which still runs)."""
    tokens = _docs_stream()
    in_order = {"doc_sliding": {"order": "stream"}}  # the audit hands a re-laid view over in its order
    full = _run(methods, tokens, over=in_order).scores
    n = tokens.size - 1
    stopped_early = 0
    for t in (0, 37, n // 3, n // 2, n - 2):
        part = _run(methods, tokens, over=in_order, score_through=t).scores
        assert np.array_equal(part[: t + 1], full[: t + 1], equal_nan=True)
        stopped_early += int(np.isnan(part).any())
    assert stopped_early >= (0 if "slot" in methods else 3)  # SLOT's one chunk is the whole window
