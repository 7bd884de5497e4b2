import json

import pytest
import torch
from safetensors.torch import load_file

from pgolf.runtime import Runtime
from pgolf.train.loop import train


def _losses(run_dir):
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if r["kind"] == "train"]


def test_tiny_training_learns_and_writes_a_checkpoint(tmp_path, tiny_data, tiny_preset):
    preset = tiny_preset(["train.iterations=12", "train.warmdown_iters=4"])
    summary = train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    assert summary["steps"] == 12 and summary["model_params"] > 0
    losses = _losses(tmp_path / "run")
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.3
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["complete"] and state["step"] == 12 and state["preset"]["model"]["num_layers"] == 2
    log = (tmp_path / "run" / "train.log").read_text()
    assert "step:12/12 train_loss:" in log and "step_avg:" in log and "final val_loss:" in log
    assert set(load_file(str(tmp_path / "run" / "model.safetensors"))) >= {"tok_emb.weight", "addons.unet_skips.skip_weights"}


def test_training_is_reproducible_with_the_same_seed(tmp_path, tiny_data, tiny_preset):
    for name in ("a", "b"):
        train(tiny_preset(), tiny_data, tmp_path / name, Runtime(), progress=False)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_compile_warmup_restores_the_initial_state(tmp_path, tiny_data, tiny_preset):
    """Warm-up steps run real updates, then restore weights, optimizer and data position, so the
    result equals a run without warm-up."""
    train(tiny_preset(), tiny_data, tmp_path / "plain", Runtime(), progress=False)
    train(tiny_preset(["train.warmup_steps=3"]), tiny_data, tmp_path / "warm", Runtime(), progress=False)
    a = load_file(str(tmp_path / "plain" / "model.safetensors"))
    b = load_file(str(tmp_path / "warm" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_wallclock_cap_stops_training(tmp_path, tiny_data, tiny_preset):
    preset = tiny_preset(["train.iterations=100000", "train.max_wallclock_seconds=1.5", "train.train_log_every=50"])
    summary = train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    assert 0 < summary["steps"] < 100000
    assert 1500 <= summary["train_time_ms"] < 1500 + 5 * summary["step_avg_ms"] + 1000


def test_batch_geometry_errors_are_clear(tmp_path, tiny_data, tiny_preset):
    from pgolf.errors import ConfigError

    with pytest.raises(ConfigError, match="tokens_per_step"):
        train(tiny_preset(["train.tokens_per_step=500"]), tiny_data, tmp_path / "r", Runtime())
    with pytest.raises(ConfigError, match="world size"):
        train(tiny_preset(["train.grad_accum=3"]), tiny_data, tmp_path / "r", Runtime(world_size=2))


def test_packed_rows_read_the_same_tokens_as_one_row_and_train(tmp_path, tiny_data, tiny_preset):
    """train.packed_rows: each micro-batch is the same stretch of the stream as one row, and a
    packed doc-isolated run learns."""
    from pgolf.data.loader import DistributedTokenLoader

    rows, packed = (DistributedTokenLoader(tiny_data, 0, 1, torch.device("cpu")) for _ in range(2))
    for _ in range(3):
        (x, y), (px, py) = rows.next_batch(512, 64, 2), packed.next_batch(512, 64, 2, packed=True)
        assert x.shape == (4, 64) and px.shape == (1, 256)
        assert torch.equal(x.reshape(1, -1), px) and torch.equal(y.reshape(1, -1), py)
    preset = tiny_preset(["train.iterations=12", "train.warmdown_iters=4", "train.packed_rows=true",
                          'model.addons.doc_isolation.kernel="flex"', "model.addons.doc_isolation.max_segment=64"])
    train(preset, tiny_data, tmp_path / "run", Runtime(), progress=False)
    losses = _losses(tmp_path / "run")
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.3
