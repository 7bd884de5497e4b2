"""The run-directory contract: files named once (`pgolf.rundir`), one state.json builder, and the
code identity in the train.log header and state.json."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch

from pgolf import rundir
from pgolf.identity import code_identity
from pgolf.runtime import Runtime
from pgolf.train.loop import train


def test_periodic_and_final_state_share_one_shape_and_carry_the_code_identity(tmp_path, tiny_data, tiny_preset):
    run = tmp_path / "run"
    periodic = []

    # Capture the periodic state.json as it is written (the final one overwrites it).
    import pgolf.train.checkpoint as checkpoint

    original = checkpoint.write_json

    def spy(path, obj):
        if path.name == rundir.STATE_FILE and not obj["complete"]:
            periodic.append(json.loads(json.dumps(obj)))
        original(path, obj)

    checkpoint.write_json = spy
    try:
        summary = train(tiny_preset(["train.iterations=4", "train.checkpoint_every=2"]), tiny_data, run, Runtime(),
                        progress=False)
    finally:
        checkpoint.write_json = original
    final = json.loads((run / rundir.STATE_FILE).read_text())
    assert [s["step"] for s in periodic] == [2, 4] and final["complete"] and final["step"] == 4
    assert set(final) - set(periodic[0]) == {"summary", "train_config"}
    assert set(periodic[0]) == {"step", "complete", "preset", "data", "code"}
    code = final["code"]
    assert code == summary["code"] == periodic[0]["code"]
    assert code["torch"] == torch.__version__ and code["device"].startswith("cpu")
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", code.get("git_commit", "")) or len(code["script_sha256"]) == 64
    header = (run / rundir.TRAIN_LOG_FILE).read_text().splitlines()[0]
    assert header.startswith("code pgolf:") and f"torch:{torch.__version__}" in header
    for name in (rundir.WEIGHTS_FILE, rundir.METRICS_FILE, rundir.RESUME_FILE):
        assert (run / name).is_file()


def test_an_exported_single_file_is_identified_by_its_sha256(tmp_path):
    import pgolf.identity as identity

    script = tmp_path / "train_gpt.py"
    script.write_text(Path(identity.__file__).read_text())
    namespace = {"__file__": str(script), "__name__": "exported"}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    got = namespace["code_identity"](torch.device("cpu"))
    assert got["script_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest() and "git_commit" not in got
    assert code_identity(torch.device("cpu"))["pgolf"] == got["pgolf"]


def test_find_results_accepts_the_file_its_run_dir_or_the_run_out_dir(tmp_path):
    (tmp_path / rundir.RUN_SUBDIR).mkdir()
    f = tmp_path / rundir.RUN_SUBDIR / rundir.RESULTS_FILE
    f.write_text("{}")
    assert rundir.find_results(f) == rundir.find_results(f.parent) == rundir.find_results(tmp_path) == f
    assert rundir.find_results(tmp_path / "nothing") is None
