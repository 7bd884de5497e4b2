"""torchrun with 2 CPU ranks (gloo) against 1 rank on the same global batch."""

import json
import subprocess
import sys

import pytest

from tests.conftest import TINY_OVERRIDES


def _run(tmp_path, tiny_data, nproc: int, name: str):
    sets = [a for o in TINY_OVERRIDES + ["train.iterations=5"] for a in ("--set", o)]
    args = ["-m", "pgolf", "train", "--preset", "cpu-mini", "--data", str(tiny_data),
            "--out", str(tmp_path / name), "--json", "--device", "cpu", *sets]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    else:
        cmd = [sys.executable, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(l) for l in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if r["kind"] == "train"], json.loads(proc.stdout)


@pytest.mark.slow
def test_two_gloo_ranks_match_one_rank(tmp_path, tiny_data):
    one, s1 = _run(tmp_path, tiny_data, 1, "one")
    two, s2 = _run(tmp_path, tiny_data, 2, "two")
    assert s1["world_size"] == 1 and s2["world_size"] == 2
    assert len(one) == len(two) == 5
    for a, b in zip(one, two):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-5)
    assert s2["val_bpb"] == pytest.approx(s1["val_bpb"], rel=1e-5)


@pytest.mark.slow
def test_seeds_under_torchrun_match_one_process(tmp_path, tiny_data):
    """`pgolf seeds` under 2 gloo ranks: rank 0 packs, both score their share, one report."""
    sets = [a for o in TINY_OVERRIDES + ["train.iterations=3"] for a in ("--set", o)]
    args = ["-m", "pgolf", "seeds", "--preset", "cpu-mini", "--seeds", "5", "--data", str(tiny_data),
            "--limit-val-tokens", "1024", "--device", "cpu", "--json", *sets]
    outs = {}
    for nproc in (1, 2):
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
                    if nproc > 1 else [sys.executable])
        proc = subprocess.run([*launcher, *args, "--out", str(tmp_path / f"n{nproc}")], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[nproc] = json.loads(proc.stdout)  # exactly one JSON document: rank 0's
    a, b = outs[1]["seeds"][0], outs[2]["seeds"][0]
    assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    assert b["total_bytes"] == pytest.approx(a["total_bytes"], rel=1e-3)  # compressed size of near-equal weights
    # each rank recorded its own share of the scoring pass; the verdicts were merged
    stream = json.loads((tmp_path / "n2" / "seed_5" / "run" / "results.json").read_text())["eval"]["stream_audit"]
    assert stream["verdict"] == "pass" and "(rank 0 of 2)" in stream["checks"][1]["detail"]


@pytest.mark.slow
def test_a_dying_rank_stops_the_job_and_the_checkpoint_stays_usable(tmp_path, tiny_data):
    import os
    import re
    import time

    sets = [a for o in TINY_OVERRIDES + ["train.iterations=20", "train.checkpoint_every=2"] for a in ("--set", o)]
    env = {**os.environ, "PGOLF_TEST_FAULT": "1:5"}  # rank 1 dies abruptly after step 5
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "pgolf", "train", "--preset", "cpu-mini", "--data", str(tiny_data),
                           "--out", str(tmp_path / "run"), "--device", "cpu", *sets],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode != 0 and time.time() - t0 < 200  # stopped, did not hang
    assert re.search(r"exitcode\s*:\s*17", proc.stderr), proc.stderr[-2000:]  # torchrun names the failed rank
    from pgolf.train.resume import load_resume

    _, meta = load_resume(tmp_path / "run")
    assert 2 <= meta["step"] <= 6  # the last resume state before the fault is intact and loadable


def _torchrun_run(tmp_path, data, out: str, kill: str | None, sets: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    import os
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("PGOLF_TEST_KILL", "PGOLF_TEST_FAULT")}
    if kill:
        env["PGOLF_TEST_KILL"] = kill
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "pgolf", "run", "--preset", "cpu-mini", "--data", str(data), "--out",
                           str(tmp_path / out), "--device", "cpu", "--json", *sets],
                          capture_output=True, text=True, timeout=300, env=env)
    return proc, time.time() - t0


@pytest.mark.slow
def test_a_rank_dying_in_calibration_or_evaluation_stops_the_job_and_the_rerun_is_clean(tmp_path, tiny_data):
    """Rank 0 killed while it collects the GPTQ Hessians (the others wait for it), rank 1 killed
    while it scores its share: torchrun stops the job within a bounded time and names the rank;
    the same command again finishes, and both reruns give the same result."""
    import re

    sets = [a for o in TINY_OVERRIDES + ['pack.quant="gptq-int6"', "train.gptq_calibration_sequences=4"]
            for a in ("--set", o)]
    results = []
    for kill in ("call:pgolf.quant.gptq.GPTQ.add_gram:0", "call:pgolf.evaluate.methods.base.EvalMethod.describe:1"):
        out = kill.split(".")[-1].replace(":", "-")
        proc, seconds = _torchrun_run(tmp_path, tiny_data, out, kill, sets)
        assert proc.returncode != 0 and seconds < 200, (kill, proc.returncode, seconds)  # stopped, did not hang
        assert re.search(r"exitcode\s*:\s*-9", proc.stderr), proc.stderr[-2000:]  # torchrun names the killed rank
        again, _ = _torchrun_run(tmp_path, tiny_data, out, None, sets)
        assert again.returncode == 0, again.stderr[-3000:]
        results.append(json.loads(again.stdout))
    assert results[0]["eval"]["val_bpb"] == results[1]["eval"]["val_bpb"]
    assert results[0]["pack"]["model_bytes"] == results[1]["pack"]["model_bytes"]
