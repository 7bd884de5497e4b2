"""`pgolf run --dry-run` for every contest-scale preset: the full-shape model through every stage
(train, in-cap calibration, pack with the preset's own settings, its own legal eval pipeline, the
audit, the export) on a tiny token budget, with measured and projected bytes against the budget."""

import json

import pytest

from pgolf.cli import main
from tests.test_presets import SEEDS

CONTEST = ["naive-baseline", *SEEDS, "record-1855"]


@pytest.fixture(scope="module")
def data_1024(tmp_path_factory):
    """The embedded corpus with a 1,024-piece tokenizer: the contest presets' vocab."""
    from pgolf.data.corpus import build_default_shards

    return build_default_shards(tmp_path_factory.mktemp("dry"), 1024, progress=False, max_chars=1_000_000)


@pytest.fixture(scope="module")
def data_8192(tmp_path_factory):
    """The embedded corpus cut into ~300-character documents, with an 8,192-piece tokenizer (the
    1.0611 preset's vocab). Short documents, so the audit's 1,024-token window holds the several
    document boundaries phased TTT needs to adapt more than once in it."""
    from pgolf.data.build import build_shards
    from pgolf.data.corpus import default_documents, write_documents

    work = tmp_path_factory.mktemp("dry8192")
    docs = [d[i:i + 300] for d in default_documents(max_chars=1_000_000) for i in range(0, len(d), 300)]
    corpus = write_documents(work / "corpus.jsonl", [d for d in docs if d.strip()])
    build_shards([corpus], work / "data", vocab_size=8192, val_fraction=0.1, progress=False)
    return work / "data"


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTEST)
def test_dry_run_of_contest_preset(name, request, tmp_path, capsys):
    from pgolf.preset_check import load_preset

    preset = load_preset(name)
    data = request.getfixturevalue({1024: "data_1024", 8192: "data_8192"}[preset.model.vocab_size])
    code = main(["run", "--preset", name, "--dry-run", "--data", str(data), "--dry-run-tokens", "1024",
                 "--out", str(tmp_path / "dry"), "--json"])
    r = json.loads(capsys.readouterr().out)
    d = r["dry_run"]
    assert code == 0 and d["projected_fits"] and d["projected_total_bytes"] <= 16_000_000
    if preset.reference.get("params") and name != "seed-700-hedge-crownq":  # #700's count is approximate
        assert d["params"] == preset.reference["params"]
    stages = [s["stage"] for s in r["stages"]]
    assert stages[:4] == ["projected bytes", "data", "train", "pack"] and stages[-1] == "export"
    # the preset's own pack settings, with code bytes from its exported file in its wrapper
    assert r["pack"]["quant"] == preset.pack.quant and r["pack"]["compressor"] in [preset.pack.compressor]
    assert r["pack"]["code_wrapper"] == preset.pack.code_wrapper in ("minified-lzma", "minified-brotli")
    assert d["code_bytes"] == r["projection"]["code_bytes"] > 10_000
    assert r["export"]["bytes"] > 10_000 and (tmp_path / "dry" / "run" / "train_gpt.py").is_file()
    if preset.pack.quant.startswith("gptq-int"):
        cal = r["train"]["calibration"]
        assert cal["within_cap"] and cal["source"] == {"train": "train", "self": "self-generated"}[
            preset.train.gptq_calibration_source]
    # its own legal eval pipeline ran and was audited; illegal methods did not run without the flag
    legal = [e for e in r["evals"] if e["legal_by_design"]]
    assert len(legal) == len(r["evals"]) and all(e["audit"] == "pass" for e in r["evals"])
    assert r["evals"][0]["methods"] == "standard"
    wanted = [m for m in preset.evaluation.get("methods", []) if not m.startswith("illegal-")
              and m not in ("slot", "hedge")]
    assert r["eval"]["method"] == ",".join(wanted or ["standard"])
    print(f"{name}: params {d['params']:,} measured {d['measured_total_bytes']:,} projected "
          f"{d['projected_total_bytes']:,} code {d['code_bytes']:,} seconds {d['seconds']:.0f}")
