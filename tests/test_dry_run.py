"""`pgolf run --dry-run` for every contest-scale preset: the full-shape model through every stage
(train, in-cap calibration, pack with the preset's own settings, its own legal eval pipeline, the
audit, the export) on a tiny token budget, with measured and projected bytes against the budget."""

import json

import pytest

from pgolf.cli import main
from tests.test_presets import SEEDS

CONTEST = ["naive-baseline", *SEEDS, "record-1855", "record-2135"]
# Validation tokens the dry run scores and audits: enough for every method to adapt inside the
# audit's window (its coverage check fails otherwise), few enough that nine full-shape dry runs fit
# the suite's time.
DRY_RUN_TOKENS = 512


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTEST)
def test_dry_run_of_contest_preset(name, request, tmp_path, capsys):
    from pgolf.job.preset import load_preset

    preset = load_preset(name)
    data = request.getfixturevalue({1024: "data_1024", 8192: "data_8192"}[preset.model.vocab_size])
    code = main(["run", "--preset", name, "--dry-run", "--data", str(data), "--dry-run-tokens", str(DRY_RUN_TOKENS),
                 "--out", str(tmp_path / "dry"), "--json"])
    r = json.loads(capsys.readouterr().out)
    d = r["dry_run"]
    assert code == 0 and d["projected_fits"] and d["projected_total_bytes"] <= 16_000_000
    assert d["measured_fits"] and d["measured_total_bytes"] <= 16_000_000  # measured on the dry-run weights
    # pergroup measured with rANS alone: an upper bound of the full search (pgolf.job.dryrun)
    assert d["measured_pergroup_backends"] == (["ans"] if preset.pack.compressor == "pergroup" else None)
    assert d["measured_layouts"] == d["preset_layouts"][:1] == r["pack"]["layouts_tried"]  # the first layout
    if preset.reference.get("params") and name != "seed-700-hedge-crownq":  # #700's count is approximate
        assert d["params"] == preset.reference["params"]
    stages = [s["stage"] for s in r["stages"]]
    assert stages[:4] == ["projected bytes", "data", "train", "pack"] and stages[-1] == "export"
    # the preset's own pack settings, with code bytes from its exported file in its wrapper
    assert r["pack"]["quant"] == preset.pack.quant and r["pack"]["compressor"] in [preset.pack.compressor]
    assert r["pack"]["code_wrapper"] == preset.pack.code_wrapper in ("minified-lzma", "minified-brotli")
    assert d["code_bytes"] == r["projection"]["code_bytes"] > 10_000
    assert r["export"]["bytes"] > 10_000 and (tmp_path / "dry" / "run" / "train_gpt.py").is_file()
    # the projection's stored bytes (floats, scales, gates, LQER) are what pack stored, group by group
    from pgolf.artifact.estimate import planned_groups

    planned = {k: g.as_dict() for k, g in planned_groups(preset, r["pack"]["lqer_matrices"],
                                                          r["pack"]["awq_groups"]).items()}
    assert len(r["pack"]["awq_groups"]) == min(preset.pack.awq_top, 1)  # AWQ-lite's one group, where set
    assert planned == r["pack"]["stored_bytes_per_group"]
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
    for group, g in sorted(planned.items()):  # planned = stored, asserted above
        print(f"  {group:<26} floats {g['floats']:>9,} scales {g['scales']:>8,} gates {g['gates']:>6,} "
              f"lqer {g['lqer']:>7,} awq {g['awq']:>6,} ({g['awq_params']:,} params)")


@pytest.mark.parametrize("name", ["record-2135", "seed-1150-ttt-slot"])
def test_dry_run_shrinks_only_the_token_budget_and_the_batches_of_its_methods(name):
    """The model keeps its full shape and the preset its methods; windows, chunks and TTT batches
    shrink to what a few thousand tokens hold (at most DRY_RUN_BATCH_DOCS documents a batch)."""
    import dataclasses

    from pgolf.evaluate.methods.base import load_methods
    from pgolf.job.dryrun import DRY_RUN_BATCH_DOCS, EVAL_SEQ_LEN, dry_run_overrides
    from pgolf.job.preset import load_preset, with_overrides

    preset = load_preset(name)
    small = with_overrides(preset, dry_run_overrides(preset, 1024))
    assert small.model == preset.model and small.pack == preset.pack and small.eval_methods == preset.eval_methods
    registry = load_methods(preset.eval_methods)
    used = {registry.get(m).section for m in preset.eval_methods}
    shrunk = ("seq_len", "chunk_tokens", "batch_docs", "warmup_steps")
    for section, table in preset.evaluation.items():
        if section not in used:
            continue
        mine = small.evaluation[section]
        assert {k: v for k, v in mine.items() if k not in shrunk} == {k: v for k, v in table.items() if k not in shrunk}
        if "batch_docs" in table:
            assert mine["batch_docs"] == min(table["batch_docs"], DRY_RUN_BATCH_DOCS)
        if "seq_len" in table:
            assert mine["seq_len"] == EVAL_SEQ_LEN
    assert dataclasses.replace(small.eval, seq_len=preset.eval.seq_len, batch_tokens=preset.eval.batch_tokens) == preset.eval
