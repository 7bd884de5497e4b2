"""Resume after kill -9: a real training subprocess is killed mid-run, `pgolf train --resume`
continues it, and the final weights and val_bpb are bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from pgolf.cli import main
from pgolf.errors import PgolfError
from pgolf.rundir import RESUME_FILE
from pgolf.train.resume import load_resume
from tests.conftest import TINY_OVERRIDES

SETS = [a for o in TINY_OVERRIDES + ["train.iterations=40", "train.checkpoint_every=5", "train.warmdown_iters=10",
                                     'train.averaging="ema"', "train.ema_decay=0.9"] for a in ("--set", o)]


@pytest.mark.slow
def test_kill9_then_resume_is_bit_identical(tmp_path, tiny_data, capsys):
    ref, cut = tmp_path / "uninterrupted", tmp_path / "killed"
    assert main(["train", "--preset", "cpu-mini", "--data", str(tiny_data), "--out", str(ref), "--json", *SETS]) == 0
    ref_summary = json.loads(capsys.readouterr().out)

    proc = subprocess.Popen([sys.executable, "-m", "pgolf", "train", "--preset", "cpu-mini", "--data", str(tiny_data),
                             "--out", str(cut), "--json", *SETS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (cut / RESUME_FILE).is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    _, meta = load_resume(cut)
    assert 0 < meta["step"] < 40 and not json.loads((cut / "state.json").read_text())["complete"]

    assert main(["train", "--resume", str(cut), "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["val_bpb"] == ref_summary["val_bpb"] and resumed["steps"] == 40

    assert main(["train", "--resume", str(cut)]) == 2
    assert "already finished" in capsys.readouterr().err


def test_resume_errors(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / RESUME_FILE).write_bytes(b"\x00" * 50)
    with pytest.raises(PgolfError, match="unreadable resume state"):
        load_resume(tmp_path)
    assert main(["train", "--out", str(tmp_path / "x")]) == 2


def test_checkpoint_minutes_writes_resume_state(tmp_path, tiny_data, capsys):
    sets = [a for o in TINY_OVERRIDES + ["train.iterations=3", "train.checkpoint_minutes=0.000001"] for a in ("--set", o)]
    assert main(["train", "--preset", "cpu-mini", "--data", str(tiny_data), "--out", str(tmp_path), *sets]) == 0
    _, meta = load_resume(tmp_path)
    assert meta["step"] == 3
