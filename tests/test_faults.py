"""The fault matrix of `pgolf run` (issue 34): SIGKILL at a point inside each stage, then the same
command again. After the kill no file under its final name is partial (each is absent, or reads
whole); the rerun redoes what was lost and its artifact, results and exported script are
bit-identical to an uninterrupted run's; nothing else in the output directory is touched.

One uninterrupted run (shared by the module) is the reference; each fault costs one killed run and
one rerun of the tiny cpu-mini."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pgolf.artifact.format import read_artifact
from tests.conftest import TINY_OVERRIDES

SETS = [a for o in TINY_OVERRIDES for a in ("--set", o)]
# (fault, what it cuts): a stage's start, a write between its temporary file and the rename, or a
# function called inside a stage
FAULTS = [
    ("stage:train", "before training"),
    ("write:model.safetensors", "training done, its weights written to their temporary name, not renamed"),
    ("stage:pack", "training done, before packing"),
    ("write:model.pgolf", "the artifact written to its temporary name, not renamed"),
    ("stage:eval", "packed, before scoring"),
    ("call:pgolf.evaluate.methods.base.EvalMethod.describe", "inside the first eval stage, scores computed"),
    ("stage:audit", "scored, before the audit"),
    ("write:train_gpt.py", "the export written to its temporary name, not renamed"),
]


def _run(data: Path, out: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PGOLF_TEST_KILL"}
    if kill:
        env["PGOLF_TEST_KILL"] = kill
    return subprocess.run([sys.executable, "-m", "pgolf", "run", "--preset", "cpu-mini", "--data", str(data),
                           "--out", str(out), "--json", *SETS], env=env, capture_output=True, text=True, timeout=600)


def _final_files_whole(run: Path) -> None:
    """Every file under its final name reads whole (temporary `.tmp` files may be left by a kill)."""
    for path in run.rglob("*"):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pgolf":
            read_artifact(path)
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            load_file(str(path))
        elif path.suffix == ".py":
            compile(path.read_text(), str(path), "exec")


def _outputs(out: Path) -> dict:
    run = out / "run"
    results = json.loads((run / "results.json").read_text())
    return {"artifact": (run / "model.pgolf").read_bytes(), "script": (run / "train_gpt.py").read_bytes(),
            "val_bpb": results["eval"]["val_bpb"], "methods": results["eval"]["method"]}


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    proc = _run(tiny_data, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _outputs(out)


@pytest.mark.parametrize("fault,where", FAULTS, ids=[f for f, _ in FAULTS])
def test_sigkill_inside_a_stage_then_the_same_command_gives_the_uninterrupted_result(fault, where, tiny_data, tmp_path,
                                                                                     reference):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "notes.txt"  # the user's own file in the output directory
    mine.write_text("mine")
    killed = _run(tiny_data, out, kill=fault)
    assert killed.returncode == -signal.SIGKILL, (where, killed.returncode, killed.stderr[-1500:])
    _final_files_whole(out)
    again = _run(tiny_data, out)
    assert again.returncode == 0, (where, again.stderr[-2000:])
    _final_files_whole(out)
    got = _outputs(out)
    assert got["artifact"] == reference["artifact"], where  # the same bytes
    assert got["script"] == reference["script"] and got["methods"] == reference["methods"]
    assert got["val_bpb"] == reference["val_bpb"], where  # to the last digit
    assert mine.read_text() == "mine"
