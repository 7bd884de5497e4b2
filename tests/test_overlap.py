"""The overlap scanner (pgolf.data.overlap): exact and near-exact copies of validation documents are
found, clean text is not, the sampled fingerprints agree with an exhaustive count, and a data build
leaves out training documents that would put validation text into training."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.data.overlap import (MIN_SHARE, WINDOW, Fingerprints, OverlapScanner, find_overlap, scan_data_dir,
                                split_documents, window_hashes)

BOS = 1


def random_docs(rng, n: int, lo: int = 40, hi: int = 600, vocab: int = 1000) -> list[np.ndarray]:
    return [np.concatenate([[BOS], rng.integers(4, vocab, rng.integers(lo, hi))]).astype(np.uint16) for _ in range(n)]


def changed(doc: np.ndarray, every: int, rng) -> np.ndarray:
    """A copy with one token in `every` replaced."""
    out = doc.copy()
    for i in range(every // 2, out.size, every):
        out[i] = 4 + (int(out[i]) + 1 + int(rng.integers(0, 50))) % 990
    return out


@given(st.lists(st.integers(0, 65535), min_size=0, max_size=60), st.integers(1, 20))
@settings(max_examples=60, deadline=None)
def test_window_hashes_equal_the_polynomial_written_out(tokens, window):
    t = np.array(tokens, dtype=np.uint16)
    got = window_hashes(t, window)
    base, mask = 0x100000001B3, (1 << 64) - 1
    want = []
    for i in range(len(tokens) - window + 1):
        h = 0
        for v in tokens[i:i + window]:
            h = (h * base + v + 1) & mask
        want.append(h)
    assert got.tolist() == want


def test_exact_and_near_copies_are_found_and_clean_text_is_not():
    rng = np.random.default_rng(0)
    val = random_docs(rng, 200)
    train = random_docs(rng, 2000)
    copied = list(range(0, 200, 10))  # 20 exact copies
    near = list(range(5, 200, 10))  # 20 with one token in a hundred changed
    for i in copied:
        train.insert(int(rng.integers(0, len(train))), val[i])
    for i in near:
        train.insert(int(rng.integers(0, len(train))), changed(val[i], 100, rng))
    stream = np.concatenate(train)
    overlap, _ = find_overlap(np.concatenate(val), [stream[: stream.size // 2], stream[stream.size // 2:]], BOS)
    assert set(overlap.found.tolist()) == set(copied) | set(near)
    assert (overlap.share[copied] == 1.0).all()
    assert (overlap.share[near] > 0.6).all()
    assert (overlap.first_seen[overlap.found] >= 0).all()
    clean, _ = find_overlap(np.concatenate(val), [np.concatenate(random_docs(rng, 2000))], BOS)
    assert clean.found.size == 0 and clean.matched.max() <= 1


def test_sampled_share_agrees_with_the_exhaustive_count():
    """Parity with the straightforward computation: every window of every document looked up in
    the set of every training window (no sampling)."""
    rng = np.random.default_rng(1)
    val = random_docs(rng, 120, lo=200, hi=900)
    train = random_docs(rng, 300, lo=200, hi=900)
    for i in range(0, 120, 3):  # whole copies, 80 % and 25 % tails, copies with one token in 50 changed
        cut = [0, val[i].size // 5, 3 * val[i].size // 4, 0][(i // 3) % 4]
        part = val[i][cut:]
        train.append(changed(part, 50, rng) if (i // 3) % 4 == 3 else part)
    rng.shuffle(train)
    stream = np.concatenate(train)
    overlap, fp = find_overlap(np.concatenate(val), [stream], BOS)
    every_train_window = np.unique(window_hashes(stream, WINDOW))
    exact = np.array([np.isin(np.unique(window_hashes(d, WINDOW)), every_train_window).mean() for d in val])
    assert np.abs(overlap.share - exact).max() < 0.2
    assert set(overlap.found.tolist()) == set(np.flatnonzero(exact >= MIN_SHARE).tolist())


def test_short_documents_match_only_whole():
    val = [np.array([BOS, 7, 8, 9], dtype=np.uint16), np.array([BOS, 5, 6], dtype=np.uint16)]
    train = np.array([BOS, 7, 8, 9, BOS, 5, 6, 11, BOS, 3], dtype=np.uint16)
    overlap, fp = find_overlap(np.concatenate(val), [train], BOS)
    assert overlap.found.tolist() == [0]  # [5, 6] occurs only inside a longer document
    assert fp.per_doc.tolist() == [1, 1]


def test_admit_leaves_nothing_a_scan_would_find():
    rng = np.random.default_rng(2)
    val = random_docs(rng, 100)
    train = random_docs(rng, 400)
    for i in range(0, 100, 5):
        half = val[i][: val[i].size // 2 + 1]
        train += [val[i], np.concatenate([[BOS], half[1:]]), np.concatenate([[BOS], val[i][val[i].size // 2:]])]
    rng.shuffle(train)
    fp = Fingerprints.of(split_documents(np.concatenate(val), BOS))
    gate = OverlapScanner(fp, bos_id=BOS)
    kept = [d for d in train if gate.admit(d)]
    assert 20 <= len(train) - len(kept) <= 60
    overlap, _ = find_overlap(np.concatenate(val), [np.concatenate(kept)], BOS)
    assert overlap.found.size == 0


def test_data_build_leaves_out_training_documents_that_hold_validation(tmp_path, corpus_docs):
    from pgolf.data.build import build_shards
    from tests.conftest import TINY_VOCAB, write_jsonl

    val = corpus_docs[-12:]
    # three of the validation documents also among the training ones (the file's last 12 are validation)
    source = write_jsonl(tmp_path / "leaky.jsonl", corpus_docs[:-12] + val[:3] + val)
    m = build_shards([source], tmp_path / "out", vocab_size=TINY_VOCAB, byte_fallback=False,
                     val_fraction=12 / (len(corpus_docs) + 3), progress=False)
    assert m["splits"]["val"]["docs"] == 12
    assert m["overlap"]["train_docs_matching_val"] >= 3 and not m["overlap"]["written"]
    assert scan_data_dir(tmp_path / "out").found.size == 0
    kept = build_shards([source], tmp_path / "kept", vocab_size=TINY_VOCAB, byte_fallback=False,
                        val_fraction=12 / (len(corpus_docs) + 3), progress=False, keep_overlap=True)
    assert kept["overlap"]["written"] and scan_data_dir(tmp_path / "kept").found.size >= 3
    assert kept["splits"]["train"]["docs"] == m["splits"]["train"]["docs"] + m["overlap"]["train_docs_matching_val"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["overlap"] == m["overlap"]


def test_scan_reports_positions_as_shard_offsets(tmp_path):
    from pgolf.data.shards import shard_name, write_shard

    rng = np.random.default_rng(3)
    val = random_docs(rng, 10)
    write_shard(tmp_path / shard_name("val", 0), np.concatenate(val))
    write_shard(tmp_path / shard_name("train", 0), np.concatenate(random_docs(rng, 50)))
    tail = np.concatenate(random_docs(rng, 5))
    write_shard(tmp_path / shard_name("train", 1), np.concatenate([tail, val[4]]))
    scan = scan_data_dir(tmp_path, bos_id=BOS)
    assert scan.found.tolist() == [4]
    for where in (scan.overlap.first_seen[4], scan.overlap.located[4]):
        name, offset = scan.position(int(where)).split(":")
        assert name == shard_name("train", 1) and tail.size <= int(offset) < tail.size + val[4].size
    with pytest.raises(Exception):
        scan_data_dir(tmp_path / "missing")
