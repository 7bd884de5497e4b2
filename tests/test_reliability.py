"""Reliability: determinism of every eval method, pickle payloads in checkpoints and resume files
refused without running, and the preset loader fuzzed with random and mutated TOML."""

from __future__ import annotations

import pickle
import string

import pytest
from hypothesis import given, settings, strategies as st

from pgolf.job.preset import load_preset
from pgolf.errors import PgolfError
from pgolf.evaluate.pipeline import run_pipeline
from pgolf.train.checkpoint import load_checkpoint
from pgolf.runtime import Runtime
from pgolf.rundir import RESUME_FILE
from pgolf.train.resume import load_resume
from tests.test_eval_methods import OVERRIDES
from tests.test_windows_pipeline import _tiny

ALL_METHODS = [["standard"], ["sliding"], ["sliding", "ttt"], ["sliding", "slot-causal"], ["sliding", "slot"],
               ["sliding", "hedge"], ["sliding", "hedge-normalized"], ["illegal-prequant-ttt", "sliding"],
               ["illegal-train-then-score-ttt", "sliding"], ["sliding", "illegal-ngram-target-key"],
               ["sliding", "illegal-target-only-norm"]]


@pytest.mark.parametrize("methods", ALL_METHODS, ids=lambda m: "+".join(m))
def test_every_eval_method_is_deterministic_to_the_last_digit(methods):
    preset, model, tables, tokens = _tiny()
    over = {**OVERRIDES, "prequant_ttt": {"epochs": 1}, "illegal_ngram_target_key": {"chunk_tokens": 256},
            "illegal_target_only_norm": {"chunk_tokens": 256}}
    a = run_pipeline(model, tokens, tables, preset, Runtime(), methods, overrides=over)
    b = run_pipeline(model, tokens, tables, preset, Runtime(), methods, overrides=over)
    assert a.totals == b.totals  # nats (float64 sum), tokens and bytes identical


class _Boom:
    def __reduce__(self):
        return (open, ("PWNED", "w"))


def test_pickle_payloads_in_checkpoints_and_resume_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = pickle.dumps({"w": _Boom()})
    (tmp_path / "model.safetensors").write_bytes(evil)
    (tmp_path / "state.json").write_text("{}")
    with pytest.raises(PgolfError, match="unreadable checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / RESUME_FILE).write_bytes(evil)
    with pytest.raises(PgolfError, match="unreadable resume state"):
        load_resume(tmp_path)
    assert not (tmp_path / "PWNED").exists()


def _load_or_pgolf_error(tmp_path_factory, text: str) -> None:
    """Load `text` as a preset file: it loads, or raises a PgolfError (anything else fails the test)."""
    path = tmp_path_factory.mktemp("p") / "preset.toml"
    path.write_text(text)
    try:
        load_preset(str(path))
    except PgolfError:
        pass


TOML_CHARS = string.ascii_letters + string.digits + " =.[]\"'\n_-#{},"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=TOML_CHARS, max_size=200))
def test_property_random_preset_text_only_raises_pgolf_errors(tmp_path_factory, text):
    _load_or_pgolf_error(tmp_path_factory, text)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_property_mutated_real_presets_only_raise_pgolf_errors(tmp_path_factory, data):
    from importlib import resources

    name = data.draw(st.sampled_from(["naive-baseline", "cpu-mini", "record-549", "seed-731-hedge"]))
    text = (resources.files("pgolf") / "presets" / f"{name}.toml").read_text()
    i = data.draw(st.integers(0, len(text) - 1))
    mutated = text[:i] + data.draw(st.sampled_from(list(TOML_CHARS))) + text[i + 1 :]
    _load_or_pgolf_error(tmp_path_factory, mutated)


def test_disk_full_leaves_no_partial_file_and_one_line_error(tmp_path, monkeypatch):
    import errno
    import os

    from pgolf.io import atomic_write_bytes

    target = tmp_path / "model.pgolf"
    target.write_bytes(b"previous")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(PgolfError, match="No space left on device"):
        atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["model.pgolf"]
