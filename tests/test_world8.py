"""Every contest-scale preset at the contest's world size: it starts under 8 ranks (torch's fake
process group, one process: the planner's emulated world), each rank's micro-batch is the one its
system trained on per GPU, and its in-cap calibration fits its reserve by the planner's estimate."""

import pytest

from pgolf.job.dryrun import short_context_schedule

from pgolf.plan.calibration import estimate_calibration
from pgolf.plan.hardware import GPU_KINDS
from pgolf.plan.measure import emulated_world
from pgolf.job.preset import load_preset, with_overrides
from pgolf.runtime import Runtime
from pgolf.train.batch import rank_batch
from pgolf.train.loop import train
from tests.test_dry_run import CONTEST

START_SEQ_LEN = 128  # the start-up run's rows; the model keeps its full shape


@pytest.mark.parametrize("name", CONTEST)
def test_contest_preset_splits_its_batch_as_its_system_did_on_8_gpus(name):
    preset = load_preset(name)
    batch = rank_batch(preset.train, 8)
    ref = preset.reference
    assert batch.micro_batches == 1  # one micro-batch per GPU and step, as the contest script's 8 // world
    assert (batch.tokens, batch.rows) == (ref["rank_batch_tokens"], ref["rank_batch_rows"])
    assert rank_batch(preset.train, 1).tokens == batch.tokens  # one GPU runs the same micro-batches in turn
    estimate = estimate_calibration(preset, GPU_KINDS["H100"])
    if preset.train.gptq_calibration_sequences:
        assert estimate.fits and estimate.seconds > 0, estimate.as_dict()
    else:
        assert estimate is None


@pytest.mark.parametrize("name", CONTEST)
def test_contest_preset_starts_at_world_size_8(name, request, tmp_path):
    """One optimizer step of the full-shape model on rank 0 of 8, with the preset's own grad_accum,
    row layout and calibration source, on rows of 128 tokens."""
    preset = load_preset(name)
    data = request.getfixturevalue({1024: "data_1024", 8192: "data_8192"}[preset.model.vocab_size])
    t = preset.train
    sets = [f"train.seq_len={START_SEQ_LEN}", f"train.tokens_per_step={t.grad_accum * START_SEQ_LEN}",
            "train.iterations=1", "train.warmup_steps=0", "train.max_wallclock_seconds=0", 'train.compile="off"',
            "train.val_every=0", f"train.val_tokens_limit={8 * START_SEQ_LEN}", "train.train_log_every=1",
            "train.checkpoint_every=0", "train.checkpoint_minutes=0"]
    if t.gptq_calibration_sequences:
        sets += ["train.gptq_calibration_sequences=2", "train.gptq_calibration_seq_len=16"]
    if t.seq_len_schedule:  # a growing context at the start-up's short rows
        sets.append(f"train.seq_len_schedule={short_context_schedule(t.seq_len_schedule, START_SEQ_LEN)[0]}")
    small = with_overrides(preset, sets)
    with emulated_world(8):
        s = train(small, data, tmp_path / "run", Runtime(world_size=8), progress=False)
    assert s["steps"] == 1 and s["world_size"] == 8
    log = (tmp_path / "run" / "train.log").read_text()
    assert "world_size:8 grad_accum_steps:1" in log
    if t.gptq_calibration_sequences:
        assert s["calibration"]["within_cap"]
