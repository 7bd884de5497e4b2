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


def _default_sigint() -> None:
    """A child started from a background job inherits SIGINT ignored, and Python then installs no
    Ctrl-C handler: give the child the default, as a terminal's foreground job has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(data: Path, out: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PGOLF_TEST_KILL"}
    if kill:
        env["PGOLF_TEST_KILL"] = kill
    return subprocess.run([sys.executable, "-m", "pgolf", "run", "--preset", "cpu-mini", "--data", str(data),
                           "--out", str(out), "--json", *SETS], env=env, capture_output=True, text=True, timeout=600,
                          preexec_fn=_default_sigint)


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
    return {**_outputs(out), "out": out}


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


@pytest.mark.parametrize("stage", ["train", "pack", "eval", "audit", "export"])
def test_ctrl_c_in_a_stage_prints_one_line_of_what_was_kept_and_how_to_go_on(stage, tiny_data, tmp_path):
    out = tmp_path / "out"
    proc = _run(tiny_data, out, kill=f"sigint:{stage}")
    assert proc.returncode == 130, proc.stderr[-1500:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("pgolf:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    line = lines[0]
    assert f"interrupted during {stage}" in line and f"kept in {out}" in line and "same command again" in line
    if stage != "train":
        assert "run/model.safetensors" in line or "more" in line  # the trained weights are kept
    _final_files_whole(out)


def _limited(max_bytes: int):
    """A child whose files may not grow past `max_bytes` (a full disk, as RLIMIT_FSIZE makes it):
    writes fail with EFBIG instead of the default SIGXFSZ kill."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit


def test_a_full_disk_during_pack_gives_one_line_and_leaves_no_partial_file(tiny_data, tmp_path, reference):
    out = tmp_path / "out"
    assert _run(tiny_data, out).returncode == 0
    run = out / "run"
    (run / "model.pgolf").unlink()
    limit = len(reference["artifact"]) // 2  # the weights and logs are smaller; the artifact is not
    proc = subprocess.run([sys.executable, "-m", "pgolf", "pack", str(run)], capture_output=True, text=True,
                          timeout=300, preexec_fn=_limited(limit))
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert proc.stderr.count("\n") == 1 and "could not write" in proc.stderr and "model.pgolf" in proc.stderr
    assert not (run / "model.pgolf").exists() and not list(run.glob("*.tmp"))


def test_a_full_disk_during_data_build_gives_one_line_and_leaves_no_partial_file(corpus_file, tiny_data, tmp_path):
    out = tmp_path / "shards"
    proc = subprocess.run([sys.executable, "-m", "pgolf", "data", "build", str(corpus_file), "--tokenizer",
                           str(tiny_data / "tokenizer.model"), "--val-fraction", "0.1", "--out", str(out)], capture_output=True, text=True, timeout=300,
                          preexec_fn=_limited(20_000))
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert proc.stderr.strip().count("\n") == 0 and "could not write" in proc.stderr
    for path in out.rglob("*"):  # whatever was written is whole; nothing is left half-written
        assert not path.name.endswith(".tmp"), path
        if path.suffix == ".bin":
            from pgolf.data.shards import read_shard

            read_shard(path)


def test_an_unwritable_output_directory_gives_one_line_before_any_work(tiny_data, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pgolf", "run", "--preset", "cpu-mini", "--data", str(tiny_data),
                           "--out", str(out), *SETS], capture_output=True, text=True, timeout=300,
                          preexec_fn=_limited(0))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-1500:]
    assert "cannot write there" in proc.stderr and "nothing was started" in proc.stderr
    assert not (out / "run").exists()


# The long commands besides `pgolf run`: each killed at a point inside it, then run again. -------------
def _pgolf(args: list[str], kill: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PGOLF_TEST_KILL"}
    if kill:
        env["PGOLF_TEST_KILL"] = kill
    return subprocess.run([sys.executable, "-m", "pgolf", *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=cwd, preexec_fn=_default_sigint)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` by its relative path (temporary `.tmp` files aside)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".tmp")}


def _mirror(root: Path) -> Path:
    """A local stand-in of the dataset repo (pgolf data fetch --mirror)."""
    import numpy as np

    from pgolf.data.shards import write_shard

    d = root / "datasets" / "fineweb10B_sp1024"
    d.mkdir(parents=True)
    write_shard(d / "fineweb_val_000000.bin", np.arange(50_000, dtype=np.uint16) % 1024)
    for i in range(3):
        write_shard(d / f"fineweb_train_{i:06d}.bin", np.full(50_000, i, dtype=np.uint16))
    tok = root / "datasets" / "tokenizers"
    tok.mkdir(parents=True)
    for ext in ("model", "vocab"):
        (tok / f"fineweb_1024_bpe.{ext}").write_text(ext)
    return root


# (command, where it is killed, what the kill cuts, the files compared with an uninterrupted run)
COMMANDS = [
    ("data build", "write:fineweb_val_000000.bin", "the training shards written, the validation shard not renamed"),
    ("data fetch", "write:fineweb_train_000001.bin", "two files copied, the third not renamed"),
    ("calibrate", "write:hessians.safetensors", "every Hessian collected, the file not renamed"),
    ("export", "write:train_gpt.py", "the script written to its temporary name"),
    ("submit", "write:submission.json", "script, requirements and log written; submission.json and README not"),
    ("check", "call:pgolf.review.run.check_submission", "inside the check (it writes nothing)"),
    ("seeds", "write:results.json", "seed 1 trained and packed, its results not renamed"),
]


def _command(name: str, tmp: Path, ref: Path, tiny_data: Path, corpus_file: Path) -> tuple[list[str], Path]:
    """The command line and the directory whose files it writes (compared across runs)."""
    run = tmp / "run"
    if name in ("calibrate", "export", "submit", "check") and not run.exists():
        import shutil

        shutil.copytree(ref / "run", run)
    if name == "data build":
        return (["data", "build", str(corpus_file), "--tokenizer", str(tiny_data / "tokenizer.model"),
                 "--val-fraction", "0.1", "--out", str(tmp / "shards")], tmp / "shards")
    if name == "data fetch":
        mirror = tmp.parent.parent / "mirror"
        if not mirror.exists():
            _mirror(mirror)
        return (["data", "fetch", "--mirror", str(mirror), "--train-shards", "3", "--out", str(tmp / "data")],
                tmp / "data")
    if name == "calibrate":
        return (["calibrate", str(run), "--sequences", "4", "--seq-len", "32"], run)
    if name == "export":
        return (["export", "cpu-mini", *SETS, "--out", str(tmp / "export" / "train_gpt.py")], tmp / "export")
    if name == "submit":
        return (["submit", str(run), "--name", "fault test", "--author", "a", "--github-id", "a",
                 "--track", "non_record_16mb", "--out", str(tmp / "sub")], tmp / "sub")
    if name == "check":
        return (["check", str(run), "--json"], run)
    return (["seeds", "--preset", "cpu-mini", *SETS, "--seeds", "1,2", "--data", str(tiny_data),
             "--out", str(tmp / "seeds"), "--limit-val-tokens", "256", "--json"], tmp / "seeds")


@pytest.mark.parametrize("name,kill,where", COMMANDS, ids=[c for c, _, _ in COMMANDS])
def test_sigkill_inside_a_command_then_the_same_command_gives_the_uninterrupted_files(name, kill, where, tmp_path,
                                                                                     reference, tiny_data, corpus_file):
    clean, cut = tmp_path / "a" / "job", tmp_path / "b" / "job"  # one name: a records folder names its run
    clean.mkdir(parents=True)
    cut.mkdir(parents=True)
    args, written = _command(name, clean, reference["out"], tiny_data, corpus_file)
    first = _pgolf(args, cwd=clean)
    assert first.returncode == 0, (name, first.stderr[-2000:])
    want = _tree(written)
    args, written = _command(name, cut, reference["out"], tiny_data, corpus_file)
    before = _tree(written) if written.exists() else {}
    killed = _pgolf(args, kill=kill, cwd=cut)
    assert killed.returncode == -signal.SIGKILL, (where, killed.returncode, killed.stderr[-1500:])
    _final_files_whole(written)
    if name == "check":
        assert _tree(written) == before  # a check writes nothing
    again = _pgolf(args, cwd=cut)
    assert again.returncode == 0, (where, again.stderr[-2000:])
    _final_files_whole(written)
    got = _tree(written)
    if name == "check":
        assert json.loads(again.stdout)["verdict"] == json.loads(first.stdout)["verdict"]
    elif name == "seeds":
        ours = json.loads(again.stdout)
        theirs = json.loads(first.stdout)
        assert [s["val_bpb"] for s in ours["seeds"]] == [s["val_bpb"] for s in theirs["seeds"]]
        for seed in ("seed_1", "seed_2"):  # the same artifacts, bit for bit
            assert got[f"{seed}/run/model.pgolf"] == want[f"{seed}/run/model.pgolf"], seed
    else:
        assert got.keys() == want.keys(), (where, sorted(set(got) ^ set(want)))
        different = [k for k in want if got[k] != want[k] and not k.endswith((".log", ".json"))]
        assert not different, (where, different)
