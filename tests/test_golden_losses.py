"""A golden per-step loss file for a tiny CPU run (as torchtitan keeps tests/assets/losses/):
refactors must reproduce it bit for bit.

The run: `cpu-mini` with the suite's tiny overrides, 8 steps, one thread, on the suite's tiny
shards. Bits are fixed only for one torch build on one kind of CPU: torch's kernels add in orders
that depend on the CPU's features (the last bit of a loss differs), and the capability name alone
does not fix them (two AVX-512 Xeons gave two patterns, one of them the AVX2 machine's train losses
with a third val loss). So the file keeps one entry per machine fingerprint — the capability and a
hash of the CPU's model name and feature flags. On a machine with an entry the run must match it
exactly; every machine must match every entry to 1e-5 relative (a behaviour change moves these
losses by far more than re-associated sums do). Write the current machine's entry for a new kind of
machine, or regenerate it for an intended change of behaviour, and say so in the commit:

    PGOLF_WRITE_GOLDEN=1 python -m pytest tests/test_golden_losses.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from pgolf.job.preset import load_preset
from pgolf.runtime import Runtime
from pgolf.train.loop import train
from tests.conftest import TINY_OVERRIDES

GOLDEN = Path(__file__).parent / "assets" / "losses" / "cpu-mini-tiny.json"
OVERRIDES = TINY_OVERRIDES + ["train.iterations=8", "train.warmdown_iters=4"]


def _run(tmp_path: Path, data: Path) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the reduction order, and so every bit, is fixed
    try:
        summary = train(load_preset("cpu-mini", OVERRIDES), data, tmp_path / "run", Runtime(), progress=False)
    finally:
        torch.set_num_threads(threads)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return {"train_loss": [r["train_loss"] for r in rows if r["kind"] == "train"],
            "val_loss": summary["val_loss"], "val_bpb": summary["val_bpb"]}


def machine_fingerprint() -> str:
    """The CPU capability torch reports plus a short hash of the CPU's model name and flags (Linux)."""
    capability = torch.backends.cpu.get_cpu_capability()
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return capability
    keep = sorted({line.split(":", 1)[1].strip() for line in info if line.startswith(("model name", "flags"))})
    return f"{capability}:{hashlib.sha256(chr(10).join(keep).encode()).hexdigest()[:10]}"


def test_tiny_run_reproduces_the_golden_losses_bit_for_bit(tmp_path, tiny_data):
    got = _run(tmp_path, tiny_data)
    capability = machine_fingerprint()
    golden = json.loads(GOLDEN.read_text())
    if os.environ.get("PGOLF_WRITE_GOLDEN"):
        golden.update(overrides=OVERRIDES, threads=1, torch=torch.__version__)
        golden["by_cpu_capability"][capability] = got
        GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    assert golden["torch"] == torch.__version__, "the golden losses were written with another torch"
    assert len(got["train_loss"]) == 8
    entries = golden["by_cpu_capability"]
    if capability in entries:
        want = entries[capability]
        assert got["train_loss"] == want["train_loss"]  # exact: floats survive JSON unchanged
        assert (got["val_loss"], got["val_bpb"]) == (want["val_loss"], want["val_bpb"])
    for want in entries.values():
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
        assert (got["val_loss"], got["val_bpb"]) == pytest.approx((want["val_loss"], want["val_bpb"]), rel=1e-5)
