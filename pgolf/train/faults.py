"""Fault injection for the distributed-fault test only, installed by the CLI, never exported:
PGOLF_TEST_FAULT="RANK:STEP" makes that rank exit abruptly right after its STEP-th Muon step
(compile warm-up steps included). It hooks the optimizers from outside, so the training loop
carries no test code."""

from __future__ import annotations

import os

from torch.optim.optimizer import register_optimizer_step_post_hook

from pgolf.train.optim.muon import Muon


def install_fault_from_env(rank: int) -> None:
    spec = os.environ.get("PGOLF_TEST_FAULT")
    if not spec:
        return
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
