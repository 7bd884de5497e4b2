"""Exact byte accounting (the contest's val_bpb) on a tokenizer without byte fallback."""

import math

import numpy as np
import pytest
import torch

from pgolf.data.bpb import BpbTotals, TorchByteTables, target_bytes
from pgolf.data.shards import load_split
from pgolf.data.tokenizer import SPACE_MARK, Normalizer, build_byte_tables, load_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def sp(tiny_data):
    return load_tokenizer(tiny_data / "tokenizer.model")


def test_byte_tables_follow_the_contest_rules(sp):
    t = build_byte_tables(sp)
    for special in (0, 1, 2, 3):  # pad, bos, eos, unk
        assert t.boundary[special] and t.base_bytes[special] == 0
    for i in range(4, sp.vocab_size()):
        piece = sp.id_to_piece(i)
        assert not t.boundary[i]
        assert t.leading_space[i] == piece.startswith(SPACE_MARK)
        assert t.base_bytes[i] == len(piece.removeprefix(SPACE_MARK).encode("utf-8"))


def test_every_normalized_byte_is_counted_or_hidden_in_unk(sp, tiny_data, corpus_docs):
    """normalized UTF-8 bytes == counted bytes + bytes inside <unk> pieces + the space bytes the
    contest drops after a boundary token (BOS or <unk>) — exactly, document by document."""
    tables = build_byte_tables(sp)
    normalize = Normalizer(tiny_data / "tokenizer.model")
    unk = sp.unk_id()
    total_hidden = 0
    for doc in corpus_docs[:60]:
        pieces = sp.encode(doc, out_type="proto").pieces  # proto pieces carry <unk>'s normalized text
        ids = np.array([sp.bos_id()] + [p.id for p in pieces])
        counted = int(target_bytes(tables, ids[:-1], ids[1:]).sum())
        inside_unk = sum(len(p.piece.encode("utf-8")) for p in pieces if p.id == unk)
        dropped_spaces = sum(
            1 for prev, cur in zip(ids[:-1], ids[1:]) if tables.leading_space[cur] and tables.boundary[prev]
        )
        normalized = len(normalize(doc).encode("utf-8"))
        assert normalized == counted + inside_unk + dropped_spaces
        total_hidden += inside_unk + dropped_spaces
    assert total_hidden > 0, "the fixture corpus must exercise <unk>"


def test_manifest_hidden_bytes_match_the_normalized_text(tiny_data, sp, corpus_docs):
    import json

    m = json.loads((tiny_data / "manifest.json").read_text())
    for split in ("train", "val"):
        s = m["splits"][split]
        assert s["normalized_bytes"] == s["counted_bytes"] + s["hidden_bytes"]
        assert s["unk_tokens"] > 0 and s["hidden_bytes"] > 0
    left_out = 0 if m["overlap"]["written"] else m["overlap"]["utf8_bytes"]  # training docs repeating validation
    assert m["splits"]["train"]["utf8_bytes"] + m["splits"]["val"]["utf8_bytes"] + left_out == sum(
        len(d.encode("utf-8")) for d in corpus_docs)


def test_uniform_logits_score_exactly_log2_vocab_tokens_over_bytes(tiny_data, sp):
    from pgolf.data.scoring import evaluate_standard
    from pgolf.runtime import Runtime

    V, T = sp.vocab_size(), 64

    class Uniform(torch.nn.Module):
        def forward(self, x, y, reduction="mean"):
            logits = torch.zeros(*x.shape, V, dtype=torch.float64)  # float64: exact to 1e-12
            return torch.nn.functional.cross_entropy(logits.view(-1, V), y.view(-1), reduction="none").view_as(y)

    val = load_split(tiny_data, "val")
    tables = build_byte_tables(sp)
    totals = evaluate_standard(Uniform(), val, TorchByteTables(tables), T, 1024, Runtime())
    n = ((val.size - 1) // T) * T
    expect_bytes = int(target_bytes(tables, val[:n], val[1 : n + 1]).sum())
    assert totals.tokens == n and totals.bytes == expect_bytes
    assert totals.bpb == pytest.approx(math.log2(V) * n / expect_bytes, rel=1e-12)


def test_gpt_with_zero_embedding_is_uniform_and_scores_log2_vocab(tiny_data, sp, tiny_preset):
    from pgolf.data.scoring import evaluate_standard
    from pgolf.model.gpt import GPT
    from pgolf.runtime import Runtime

    model = GPT(tiny_preset().model)
    torch.nn.init.zeros_(model.tok_emb.weight)  # tied head of zeros -> all logits 0
    val = load_split(tiny_data, "val")
    tables = build_byte_tables(sp)
    totals = evaluate_standard(model, val, TorchByteTables(tables), 64, 1024, Runtime())
    assert totals.bpb == pytest.approx(math.log2(sp.vocab_size()) * totals.tokens / totals.bytes, rel=1e-6)


def test_byte_fallback_pieces_count_one_byte(tmp_path, corpus_docs):
    sp = train_tokenizer(corpus_docs[:40], tmp_path / "bf", vocab_size=400, byte_fallback=True)
    t = build_byte_tables(sp)
    byte_ids = [i for i in range(sp.vocab_size()) if sp.is_byte(i)]
    assert len(byte_ids) == 256
    assert all(t.base_bytes[i] == 1 and not t.boundary[i] for i in byte_ids)
    # With byte fallback nothing hides in <unk>: every normalized byte is counted.
    text = "naïve café → ① done"
    ids = np.array([sp.bos_id()] + sp.encode(text))
    assert sp.unk_id() not in ids
    normalized = Normalizer(tmp_path / "bf.model")(text)
    assert int(target_bytes(t, ids[:-1], ids[1:]).sum()) == len(normalized.encode("utf-8"))


def test_bpb_totals_arithmetic():
    t = BpbTotals()
    t.add(nats=10.0, tokens=5, nbytes=20)
    t.add(nats=2.0, tokens=1, nbytes=4)
    assert t.loss == pytest.approx(2.0)
    assert t.bpb == pytest.approx(12.0 / math.log(2) / 24)
