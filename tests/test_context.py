"""A training context that grows on the wallclock schedule (`train.seq_len_schedule`, #2014's
1024 → 2048 → 3072): the same tokens each step, rows of each stage's length, packed documents cut
at it, every stage's shape compiled before the clock, the fixed context exactly when it has one
stage, and bad schedules refused when the preset loads."""

from __future__ import annotations

import json

import pytest

from pgolf.data.loader import DistributedTokenLoader
from pgolf.errors import ConfigError
from pgolf.runtime import Runtime
from pgolf.train.loop import train


def _losses(run) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if r.get("kind") == "train"]


@pytest.fixture
def seen_lengths(monkeypatch):
    """Every row length the loader is asked for, in order."""
    lengths: list[int] = []
    original = DistributedTokenLoader.next_batch

    def recording(self, global_tokens, seq_len, micro_steps, packed=False):
        lengths.append(seq_len)
        return original(self, global_tokens, seq_len, micro_steps, packed)

    monkeypatch.setattr(DistributedTokenLoader, "next_batch", recording)
    return lengths


def test_one_stage_is_the_fixed_context_exactly(tmp_path, tiny_data, tiny_preset):
    train(tiny_preset(), tiny_data, tmp_path / "fixed", Runtime(), progress=False)
    train(tiny_preset(["train.seq_len_schedule=[[0.0, 64]]"]), tiny_data, tmp_path / "one", Runtime(), progress=False)
    assert _losses(tmp_path / "fixed") == _losses(tmp_path / "one")


def test_the_context_grows_at_its_fractions_on_the_same_tokens(tmp_path, tiny_data, tiny_preset, seen_lengths):
    short = tiny_preset(["train.seq_len=32"])
    train(short, tiny_data, tmp_path / "short", Runtime(), progress=False)
    seen_lengths.clear()
    grown = tiny_preset(["train.seq_len_schedule=[[0.0, 32], [0.5, 64]]", "train.warmup_steps=4"])
    train(grown, tiny_data, tmp_path / "grown", Runtime(), progress=False)
    micro = 2  # train.grad_accum
    warm, steps = seen_lengths[: 4 * micro], seen_lengths[4 * micro:]
    assert sorted(set(warm)) == [32, 64]  # both shapes compiled before the clock
    assert steps == [32] * 3 * micro + [64] * 3 * micro  # iterations 6: the second stage from step 3
    log = (tmp_path / "grown" / "train.log").read_text()
    assert "context step:3 frac:0.500 seq_len:64" in log
    a, b = _losses(tmp_path / "short"), _losses(tmp_path / "grown")
    assert a[:3] == b[:3] and a[3:] != b[3:]  # the same tokens and model until the context grows


def test_packed_documents_are_cut_at_the_stage_length(tmp_path, tiny_data, tiny_preset, seen_lengths):
    from pgolf.model.gpt import GPT

    cuts: list[int] = []
    original = GPT.set_context

    def recording(self, seq_len):
        cuts.append(seq_len)
        return original(self, seq_len)

    import pgolf.model.gpt as gpt_module

    gpt_module.GPT.set_context = recording
    try:
        preset = tiny_preset(["train.packed_rows=true", "model.addons.doc_isolation.max_segment=64",
                              "train.seq_len_schedule=[[0.0, 16], [0.5, 64]]"])
        train(preset, tiny_data, tmp_path / "packed", Runtime(), progress=False)
    finally:
        gpt_module.GPT.set_context = original
    assert cuts[0] == 16 and cuts[-1] == 64
    assert set(seen_lengths) == {16, 64}


@pytest.mark.parametrize("schedule, message", [
    ("[[0.1, 32]]", "start at 0.0"),
    ("[[0.0, 32], [0.5, 16], [0.4, 64]]", "rise strictly"),
    ("[[0.0, 48]]", "divide a micro-batch"),
    ("[[0.0, 32], [1.0, 64]]", "below 1.0"),
])
def test_bad_schedules_are_refused_when_the_preset_loads(tiny_preset, schedule, message):
    with pytest.raises(ConfigError, match=message):
        tiny_preset([f"train.seq_len_schedule={schedule}"])


def test_packed_growth_needs_document_isolation(tiny_preset):
    with pytest.raises(ConfigError):
        tiny_preset(["train.packed_rows=true", "train.seq_len_schedule=[[0.0, 32]]"])


def test_evaluation_cuts_documents_at_its_own_context_and_gives_the_training_cut_back():
    """#2135 trains with documents cut every 2,048 tokens and scores them cut at its 2,560-token eval
    context: the pass cuts at eval.seq_len while it scores, and the model has its training cut after."""
    import numpy as np
    import torch

    from pgolf.evaluate.pipeline import run_pipeline
    from pgolf.job.preset import load_preset
    from pgolf.model.gpt import GPT
    from tests.conftest import TINY_OVERRIDES, TINY_VOCAB
    from tests.test_windows_pipeline import _tiny

    preset = load_preset("cpu-mini", [*TINY_OVERRIDES, "model.addons.doc_isolation.max_segment=16",
                                      "model.addons.doc_isolation.kernel=\"mask\""])
    torch.manual_seed(0)
    model = GPT(preset.model)
    with torch.no_grad():  # the projections start at zero: attention must matter for the cut to show
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    iso = model.addons["doc_isolation"]
    seen: list[int] = []
    hook = model.blocks[0].register_forward_pre_hook(lambda *_: seen.append(iso.max_segment))
    tables = _tiny()[2]
    tokens = np.random.default_rng(0).integers(2, TINY_VOCAB, 400).astype(np.uint16)
    cut_at_eval = run_pipeline(model, tokens, tables, preset, Runtime(), ["standard"]).totals
    hook.remove()
    assert seen and set(seen) == {preset.eval.seq_len} and iso.max_segment == 16
    iso.set_context(16)  # the same pass with the training cut left in place scores otherwise
    model.set_context = lambda seq_len: None
    cut_at_train = run_pipeline(model, tokens, tables, preset, Runtime(), ["standard"]).totals
    assert cut_at_eval.tokens == cut_at_train.tokens and cut_at_eval.nats != cut_at_train.nats
