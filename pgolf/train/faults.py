"""Fault injection for the distributed-fault test only, installed by the CLI, never exported:
PGOLF_TEST_FAULT="RANK:STEP" makes that rank exit abruptly right after that training step."""

from __future__ import annotations

import os
from typing import Callable


def fault_hook_from_env() -> Callable[[int, int], None] | None:
    spec = os.environ.get("PGOLF_TEST_FAULT")
    if not spec:
        return None
    rank_at, step_at = (int(x) for x in spec.split(":"))

    def hook(rank: int, step: int) -> None:
        if (rank, step) == (rank_at, step_at):
            os._exit(17)

    return hook
