"""`data fetch` against a local stand-in of the dataset repo (the live hub is not reachable here)."""

import json

import numpy as np
import pytest

from pgolf.data.fetch import LocalHub, fetch, plan_fetch
from pgolf.data.shards import read_shard, write_shard
from pgolf.errors import DataError


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "hub"
    for variant, n_train in (("sp1024", 4), ("sp8192", 2)):
        d = root / "datasets" / f"fineweb10B_{variant}"
        d.mkdir(parents=True)
        write_shard(d / "fineweb_val_000000.bin", np.arange(10, dtype=np.uint16))
        for i in range(n_train):
            write_shard(d / f"fineweb_train_{i:06d}.bin", np.full(5, i, dtype=np.uint16))
    tok = root / "datasets" / "tokenizers"
    tok.mkdir(parents=True)
    for v in (1024, 8192):
        for ext in ("model", "vocab"):
            (tok / f"fineweb_{v}_bpe.{ext}").write_text(f"{v}.{ext}")
    (root / "README.md").write_text("x")
    docs = ["First document.", "Second one, with CAPS.", "Third."]
    (root / "datasets" / "docs_selected.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    (root / "datasets" / "docs_selected.source_manifest.json").write_text(json.dumps({"docs_val": 2, "num_docs": 3}))
    return root


def test_plan_selects_all_val_a_train_prefix_and_the_tokenizer(mirror):
    plan = plan_fetch(LocalHub(mirror).list_files(), "sp1024", train_shards=2)
    assert plan.val == ["datasets/fineweb10B_sp1024/fineweb_val_000000.bin"]
    assert plan.train == [f"datasets/fineweb10B_sp1024/fineweb_train_00000{i}.bin" for i in (0, 1)]
    assert plan.tokenizer == ["datasets/tokenizers/fineweb_1024_bpe.model", "datasets/tokenizers/fineweb_1024_bpe.vocab"]
    with pytest.raises(DataError, match="has 4"):
        plan_fetch(LocalHub(mirror).list_files(), "sp1024", train_shards=9)
    with pytest.raises(DataError, match="unknown variant"):
        plan_fetch([], "sp4096")


def test_fetch_keeps_the_repo_layout_and_resumes(tmp_path, mirror):
    out = tmp_path / "data"
    r = fetch(out, "sp8192", 1, hub=LocalHub(mirror), progress=False)
    assert r["data_dir"] == str(out / "datasets/fineweb10B_sp8192")
    assert r["tokenizer"] == str(out / "datasets/tokenizers/fineweb_8192_bpe.model")
    assert r["fetched"] == 4 and r["train_shards"] == 1
    assert read_shard(out / "datasets/fineweb10B_sp8192/fineweb_train_000000.bin").tolist() == [0] * 5
    # A truncated shard (an interrupted download) is fetched again; complete ones are skipped.
    shard = out / "datasets/fineweb10B_sp8192/fineweb_val_000000.bin"
    shard.write_bytes(shard.read_bytes()[:-4])
    again = fetch(out, "sp8192", 1, hub=LocalHub(mirror), progress=False)
    assert again["skipped_complete"] == 1 and again["fetched"] == 3
    assert read_shard(shard).size == 10


def test_offline_gives_a_clear_message(tmp_path):
    class Offline:
        def list_files(self):
            raise ConnectionError("Name or service not known")

    with pytest.raises(DataError, match="are you offline"):
        fetch(tmp_path, hub=Offline(), progress=False)


def test_with_docs_fetches_the_documents_and_reads_the_validation_count(tmp_path, mirror):
    out = tmp_path / "data"
    plain = fetch(out, "sp1024", 0, hub=LocalHub(mirror), progress=False)
    assert "docs" not in plain and not (out / "datasets/docs_selected.jsonl").exists()
    r = fetch(out, "sp1024", 0, hub=LocalHub(mirror), progress=False, with_docs=True)
    assert r["docs"] == str(out / "datasets/docs_selected.jsonl") and r["docs_val"] == 2
    lines = (out / "datasets/docs_selected.jsonl").read_text().splitlines()
    assert [json.loads(line)["text"] for line in lines][1] == "Second one, with CAPS."
    # the documents come last, after the shards a run needs
    plan = plan_fetch(LocalHub(mirror).list_files(), "sp1024", 1, with_docs=True)
    assert plan.files[-2:] == ["datasets/docs_selected.source_manifest.json", "datasets/docs_selected.jsonl"]


def test_with_docs_on_a_repo_without_them_is_a_clear_error(mirror):
    files = [f for f in LocalHub(mirror).list_files() if "docs_selected" not in f]
    with pytest.raises(DataError, match="no datasets/docs_selected.jsonl"):
        plan_fetch(files, "sp1024", 0, with_docs=True)
