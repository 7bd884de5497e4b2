"""Fault injection for the fault tests only, installed by the CLI from the environment, never
exported; it hooks pgolf from outside, so no stage carries test code.

- PGOLF_TEST_FAULT="RANK:STEP": that rank exits abruptly right after its STEP-th Muon step
  (compile warm-up steps included) — the distributed-fault test.
- PGOLF_TEST_KILL="stage:NAME[:RANK]": the process (that rank's) SIGKILLs itself as `pgolf run`'s
  stage NAME begins (a name's prefix matches: "eval" is the first eval stage); "sigint:NAME"
  sends itself SIGINT there instead (Ctrl-C).
- PGOLF_TEST_KILL="write:FILENAME": SIGKILL once FILENAME.tmp is written and fsynced, before it is
  renamed over FILENAME — the worst moment for a write that is not atomic.
- PGOLF_TEST_KILL="call:MODULE.FUNCTION[:RANK]": SIGKILL when that function is first called
  (inside a stage: a calibration batch, an eval method's chunk, a sweep trial, ...).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal

from torch.optim.optimizer import register_optimizer_step_post_hook

from pgolf.train.optim.muon import Muon


def _die(sig: int = signal.SIGKILL) -> None:
    os.kill(os.getpid(), sig)


def install_fault_from_env(rank: int) -> None:
    spec = os.environ.get("PGOLF_TEST_FAULT")
    if spec:
        _exit_after_step(rank, spec)
    kill = os.environ.get("PGOLF_TEST_KILL")
    if kill:
        kind, _, what = kill.partition(":")
        target, _, on_rank = what.rpartition(":") if kind != "write" and what.count(":") else (what, "", "")
        if on_rank and int(on_rank) != rank:
            return
        if kind == "sigint":
            _kill_at_stage(target, signal.SIGINT)
        else:
            {"stage": _kill_at_stage, "write": _kill_before_rename, "call": _kill_at_call}[kind](target)


def _exit_after_step(rank: int, spec: str) -> None:
    rank_at, step_at = (int(x) for x in spec.split(":"))
    if rank != rank_at:
        return
    steps = 0

    def after_optimizer_step(optimizer, args, kwargs) -> None:
        nonlocal steps
        if isinstance(optimizer, Muon):
            steps += 1
            if steps == step_at:
                os._exit(17)

    register_optimizer_step_post_hook(after_optimizer_step)


def _kill_at_stage(name: str, sig: int = signal.SIGKILL) -> None:
    from pgolf.job.run import StageTimer

    original = StageTimer.stage

    @contextlib.contextmanager
    def stage(self, stage_name: str):
        with original(self, stage_name) as row:
            if stage_name.startswith(name):
                _die(sig)
            yield row

    StageTimer.stage = stage


def _kill_before_rename(filename: str) -> None:
    import pgolf.io as io

    original = io.atomic_write

    def atomic_write(path, write):
        if os.path.basename(str(path)) != filename:
            return original(path, write)

        def write_then_die(f):
            write(f)
            f.flush()
            os.fsync(f.fileno())
            _die()

        return original(path, write_then_die)

    io.atomic_write = atomic_write


def _kill_at_call(target: str) -> None:
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable prefix is the module
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
            break
        except ModuleNotFoundError:
            continue
    for name in parts[cut:-1]:  # a class (Class.method)
        owner = getattr(owner, name)
    attr = parts[-1]
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        _die()

    setattr(owner, attr, wrapped)
