"""CaseOps (the lossless case transform) and the per-token byte sidecar: the transform is a
bijection, the sidecar charges exactly the original UTF-8 bytes, and evaluation reads it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.data.build import build_shards
from pgolf.data.shards import list_shards, read_shard, sidecar_path
from pgolf.data.transforms import TRANSFORMS
from pgolf.data.transforms.caseops import ALLCAPS, CAPNEXT, ESC, OPERATORS, TITLE
from pgolf.errors import DataError
from tests.conftest import write_jsonl

CASEOPS = TRANSFORMS.get("caseops")
# Letters of both cases and the operator characters themselves, so that escapes and every word
# shape turn up often, mixed with arbitrary Unicode.
TRICKY = st.sampled_from(list("aAbBqQzZ") + sorted(OPERATORS) + [" ", "\n", "é", "ß", "İ", "ﬁ", "😀", "\ue000"])
TEXT = st.text(alphabet=st.one_of(TRICKY, st.characters(codec="utf-8")), max_size=80)  # documents are UTF-8


@settings(max_examples=600, deadline=None)
@given(TEXT)
def test_decode_inverts_encode_on_any_unicode(text):
    encoded = CASEOPS.encode(text)
    assert CASEOPS.decode(encoded) == text
    assert not any("A" <= c <= "Z" for c in encoded)  # every ASCII capital became an operator


@settings(max_examples=600, deadline=None)
@given(TEXT)
def test_the_original_byte_mask_counts_exactly_the_original_bytes(text):
    encoded = CASEOPS.encode(text).encode("utf-8")
    mask = CASEOPS.original_bytes(encoded)
    assert int(mask.sum()) == len(text.encode("utf-8"))
    # the marked bytes, with letters folded back, are the original bytes in order
    kept = bytes(b for b, m in zip(encoded, mask) if m)
    assert kept.lower() == text.encode("utf-8").lower()


def test_the_word_shapes_map_as_documented():
    assert CASEOPS.encode("The NASA Launch") == f"{TITLE}the {ALLCAPS}nasa {TITLE}launch"
    assert CASEOPS.encode("McDonald iPhone") == f"{TITLE}mc{CAPNEXT}donald i{CAPNEXT}phone"
    assert CASEOPS.encode("A I x") == f"{TITLE}a {TITLE}i x"  # one capital letter is TITLE, not ALLCAPS
    assert CASEOPS.encode(f"a{TITLE}b") == f"a{ESC}{TITLE}b"


@pytest.mark.parametrize("bad", [f"{TITLE} x", f"x{CAPNEXT}", f"{CAPNEXT}ab", f"ab{ESC}c", f"a{ESC}",
                                 "Abc", f"{TITLE}{ALLCAPS}ab", f"a{TITLE}b"])
def test_malformed_encoded_text_is_a_one_line_error(bad):
    with pytest.raises(DataError, match="caseops"):
        CASEOPS.decode(bad)


def test_the_tests_corpus_round_trips(corpus_docs):
    changed = 0
    for doc in corpus_docs:
        enc = CASEOPS.encode(doc)
        assert CASEOPS.decode(enc) == doc
        changed += enc != doc
    assert changed > len(corpus_docs) // 2  # the corpus has capitals to fold


@pytest.fixture(scope="module")
def caseops_data(tmp_path_factory, corpus_docs):
    """The tests' corpus plus documents the tokenizer's normaliser changes (edge and repeated
    whitespace, NFKC), built with CaseOps and a tokenizer trained here with the operators reserved."""
    edge_cases = ["  Leading and TRAILING whitespace \n\n", "Double  spaces\tand\u00a0NBSP", "ﬁne ① Ⅻ",
                  " \n ", "", f"Literal {TITLE}operators{ESC} In Text"]
    docs = edge_cases + corpus_docs + edge_cases  # edge cases in both splits
    src = write_jsonl(tmp_path_factory.mktemp("caseops-src") / "docs.jsonl", docs)
    out = tmp_path_factory.mktemp("caseops-data")
    manifest = build_shards([src], out, vocab_size=512, val_fraction=0.1, progress=False, transform="caseops",
                            shard_tokens=4096)
    return out, manifest, docs


def test_the_sidecar_sums_to_the_raw_byte_count(caseops_data):
    out, manifest, docs = caseops_data
    n_val = int(round(len(docs) * 0.1))
    val_docs = docs[len(docs) - n_val:]
    raw = sum(len(d.encode("utf-8")) for d in val_docs)
    shards = list_shards(out, "val")
    assert len(shards) > 1  # the sidecar is cut at the same boundaries as the tokens
    total = 0
    for shard in shards:
        tokens, counts = np.asarray(read_shard(shard)), np.asarray(read_shard(sidecar_path(shard)))
        assert tokens.size == counts.size
        total += int(counts.sum())
    assert total == raw == manifest["splits"]["val"]["utf8_bytes"] == manifest["splits"]["val"]["counted_bytes"]
    assert manifest["splits"]["train"]["counted_bytes"] == manifest["splits"]["train"]["utf8_bytes"]
    assert manifest["transform"] == "caseops" and manifest["splits"]["val"]["hidden_bytes"] == 0
    assert not list(out.glob("fineweb_train_bytes_*.bin"))  # only validation is scored


def test_each_document_is_charged_its_own_bytes(caseops_data):
    out, _, docs = caseops_data
    n_val = int(round(len(docs) * 0.1))
    tokens = np.concatenate([np.asarray(read_shard(s)) for s in list_shards(out, "val")])
    counts = np.concatenate([np.asarray(read_shard(sidecar_path(s))) for s in list_shards(out, "val")])
    starts = np.flatnonzero(tokens == 1).tolist() + [tokens.size]
    per_doc = [int(counts[a:b].sum()) for a, b in zip(starts, starts[1:])]
    assert per_doc == [len(d.encode("utf-8")) for d in docs[len(docs) - n_val:]]


def test_a_tokenizer_without_the_operator_pieces_is_refused(tmp_path, tiny_data, corpus_file):
    with pytest.raises(DataError, match="needs U\\+E001 as one piece"):
        build_shards([corpus_file], tmp_path / "out", tokenizer=tiny_data / "tokenizer.model", val_fraction=0.1,
                     progress=False, transform="caseops")


def test_evaluation_charges_the_sidecar_bytes(caseops_data, tiny_preset):
    from pgolf.data.bpb import SidecarByteCounts
    from pgolf.data.validation import load_eval_inputs
    from pgolf.evaluate.pipeline import run_pipeline
    from pgolf.model.gpt import GPT
    from pgolf.runtime import Runtime
    from pgolf.data.scoring import evaluate_standard, usable_targets

    out, manifest, _ = caseops_data
    preset = tiny_preset(["model.vocab_size=512"])
    runtime = Runtime()
    val, counts, _ = load_eval_inputs(out, None, 512, runtime.device)
    assert isinstance(counts, SidecarByteCounts)
    torch.manual_seed(0)
    model = GPT(preset.model)
    seq = preset.eval.seq_len
    totals = evaluate_standard(model, val, counts, seq, preset.eval.batch_tokens, runtime)
    usable = usable_targets(val.size, seq)
    assert totals.bytes == int(counts.sidecar[1 : usable + 1].sum())
    sliding = run_pipeline(model, val, counts, preset, runtime, ["sliding"])
    assert sliding.totals.bytes == manifest["splits"]["val"]["utf8_bytes"]  # every target, every byte


def test_train_pack_and_audit_on_caseops_data_charge_the_original_bytes(caseops_data, tmp_path, capsys):
    """The whole path on CaseOps shards: the audit's provenance check reports that the sidecar
    charges exactly the original bytes, and flags a sidecar that does not."""
    from pgolf.audit.checks import byte_accounting, provenance
    from pgolf.cli import main
    from pgolf.data.bpb import SidecarByteCounts
    from pgolf.data.tokenizer import ByteTables
    from tests.test_cli import _sets

    out, manifest, _ = caseops_data
    run = tmp_path / "run"
    sets = _sets(["model.vocab_size=512"])
    assert main(["train", "--preset", "cpu-mini", "--data", str(out), "--out", str(run), *sets]) == 0
    assert main(["pack", str(run)]) == 0
    capsys.readouterr()
    code = main(["audit", str(run / "model.pgolf"), "--data", str(out), "--methods", "sliding", "--limit-tokens", "512",
                 "--json", "--set", "evaluation.sliding.stride=32"])
    r = json.loads(capsys.readouterr().out)
    check = next(c for c in r["checks"] if c["name"] == "data provenance")
    assert code == 0 and check["passed"]
    assert f"the sidecar charges exactly the {manifest['splits']['val']['utf8_bytes']:,} original bytes" in check["detail"]

    piece_tables = ByteTables(np.zeros(4, np.int64), np.zeros(4, bool), np.ones(4, bool))  # unused here
    counts = SidecarByteCounts(piece_tables, np.array([0, 3, 1, 2]))
    ok = byte_accounting(counts, {"splits": {"val": {"utf8_bytes": 6}}}, 4)
    assert provenance({}, ok).passed
    bad = byte_accounting(counts, {"splits": {"val": {"utf8_bytes": 7}}}, 4)
    flagged = provenance({}, bad)
    assert not flagged.passed and flagged.evidence == [{"charged_bytes": 6, "original_bytes": 7}]


def test_worker_processes_write_the_same_shards_and_sidecars(caseops_data, tmp_path, monkeypatch):
    monkeypatch.setattr("pgolf.data.build.ENCODE_BATCH_DOCS", 5)  # many batches over the two workers
    out, manifest, docs = caseops_data
    src = write_jsonl(tmp_path / "docs.jsonl", docs)
    again = build_shards([src], tmp_path / "two", tokenizer=out / "tokenizer.model", val_fraction=0.1,
                         progress=False, transform="caseops", shard_tokens=4096, workers=2)
    assert again["splits"] == manifest["splits"]
    names = sorted(p.name for p in out.glob("fineweb_*.bin"))
    assert names == sorted(p.name for p in (tmp_path / "two").glob("fineweb_*.bin"))
    assert any("_bytes_" in n for n in names)
    for name in names:
        assert (out / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
