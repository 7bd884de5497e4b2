import numpy as np
import pytest

from pgolf.data.build import build_shards
from pgolf.data.shards import list_shards, read_shard
from pgolf.data.tokenizer import load_tokenizer
from pgolf.errors import DataError
from tests.conftest import write_jsonl


def test_each_document_is_bos_plus_pieces_with_no_eos(tmp_path, tiny_data, corpus_docs):
    tok = tiny_data / "tokenizer.model"
    sp = load_tokenizer(tok)
    docs = corpus_docs[:5]
    src = write_jsonl(tmp_path / "a.jsonl", docs)
    build_shards([src], tmp_path / "out", tokenizer=tok, val_docs=2, progress=False)
    val = np.asarray(read_shard(tmp_path / "out" / "fineweb_val_000000.bin")).tolist()
    train = np.asarray(read_shard(tmp_path / "out" / "fineweb_train_000000.bin")).tolist()
    expect = lambda ds: [t for d in ds for t in [sp.bos_id()] + sp.encode(d)]
    assert val == expect(docs[:2])  # --val-docs: the first K documents
    assert train == expect(docs[2:])
    assert sp.eos_id() not in val + train


def test_val_fraction_takes_the_last_documents_of_each_file(tmp_path, tiny_data, corpus_docs):
    tok = tiny_data / "tokenizer.model"
    a = write_jsonl(tmp_path / "a.jsonl", corpus_docs[:10])
    b = write_jsonl(tmp_path / "b.jsonl", corpus_docs[10:30])
    m = build_shards([a, b], tmp_path / "out", tokenizer=tok, val_fraction=0.1, progress=False)
    assert m["splits"]["val"]["docs"] == 1 + 2 and m["splits"]["train"]["docs"] == 9 + 18
    sp = load_tokenizer(tok)
    val = np.asarray(read_shard(tmp_path / "out" / "fineweb_val_000000.bin")).tolist()
    expect = [t for d in [corpus_docs[9], corpus_docs[28], corpus_docs[29]] for t in [sp.bos_id()] + sp.encode(d)]
    assert val == expect
    assert m["tokenizer"]["sha256"] and m["tokenizer"]["vocab_size"] == 256
    assert m["split_rule"] == {"val_fraction": 0.1}


def test_shards_split_at_the_requested_size(tmp_path, tiny_data, corpus_docs):
    src = write_jsonl(tmp_path / "a.jsonl", corpus_docs[:40])
    m = build_shards([src], tmp_path / "out", tokenizer=tiny_data / "tokenizer.model", val_docs=1,
                     shard_tokens=1000, progress=False)
    shards = list_shards(tmp_path / "out", "train")
    sizes = [read_shard(p).size for p in shards]
    assert len(shards) > 2 and all(s == 1000 for s in sizes[:-1]) and sum(sizes) == m["splits"]["train"]["tokens"]


def test_plain_text_files_are_one_document_each(tmp_path, tiny_data):
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"{i}.txt").write_text(f"document number {i}\nwith two lines")
    m = build_shards([tmp_path / "in"], tmp_path / "out", tokenizer=tiny_data / "tokenizer.model",
                     val_docs=1, progress=False)
    assert m["splits"]["val"]["docs"] == 1 and m["splits"]["train"]["docs"] == 2


def test_bad_inputs_give_clear_errors(tmp_path, tiny_data):
    tok = tiny_data / "tokenizer.model"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: invalid JSON"):
        build_shards([bad], tmp_path / "o", tokenizer=tok, val_docs=1, progress=False)
    bad.write_text('{"body": "no text field"}\n')
    with pytest.raises(DataError, match="no string field 'text'"):
        build_shards([bad], tmp_path / "o", tokenizer=tok, val_docs=1, progress=False)
    one = write_jsonl(tmp_path / "one.jsonl", ["only one document"])
    with pytest.raises(DataError, match="train split is empty"):
        build_shards([one], tmp_path / "o", tokenizer=tok, val_docs=1, progress=False)
    with pytest.raises(DataError, match="not found"):
        build_shards([tmp_path / "missing.jsonl"], tmp_path / "o", tokenizer=tok, val_docs=1)


def test_worker_processes_write_the_same_shards(tmp_path, tiny_data, corpus_docs, monkeypatch):
    monkeypatch.setattr("pgolf.data.build.ENCODE_BATCH_DOCS", 7)  # many batches, finished out of order
    tok = tiny_data / "tokenizer.model"
    src = write_jsonl(tmp_path / "a.jsonl", corpus_docs)
    one = build_shards([src], tmp_path / "one", tokenizer=tok, val_docs=3, progress=False, shard_tokens=2048)
    two = build_shards([src], tmp_path / "two", tokenizer=tok, val_docs=3, progress=False, shard_tokens=2048,
                       workers=2)
    assert one["splits"] == two["splits"] and len(one["splits"]["train"]["shards"]) > 1
    for name in one["splits"]["train"]["shards"] + one["splits"]["val"]["shards"]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_max_train_docs_stops_after_that_many_training_documents(tmp_path, tiny_data, corpus_docs):
    tok = tiny_data / "tokenizer.model"
    src = write_jsonl(tmp_path / "a.jsonl", corpus_docs[:20])
    m = build_shards([src], tmp_path / "out", tokenizer=tok, val_docs=4, max_train_docs=5, progress=False)
    assert m["splits"]["val"]["docs"] == 4 and m["splits"]["train"]["docs"] == 5
    assert m["split_rule"] == {"val_docs": 4, "max_train_docs": 5} and m["inputs"][0]["docs"] == 9
    sp = load_tokenizer(tok)
    train = np.asarray(read_shard(tmp_path / "out" / "fineweb_train_000000.bin")).tolist()
    assert train == [t for d in corpus_docs[4:9] for t in [sp.bos_id()] + sp.encode(d)]
    with pytest.raises(DataError, match="needs val_docs"):
        build_shards([src], tmp_path / "o2", tokenizer=tok, val_fraction=0.1, max_train_docs=5, progress=False)
    with pytest.raises(DataError, match="workers must be"):
        build_shards([src], tmp_path / "o3", tokenizer=tok, val_docs=1, workers=0, progress=False)
