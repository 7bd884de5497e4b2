"""Checkpoints: model weights in safetensors (no pickle) plus a JSON state file, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from pgolf.errors import PgolfError
from pgolf.io import atomic_write_safetensors, write_json
from pgolf.rundir import STATE_FILE, WEIGHTS_FILE


def plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict of the underlying module (no DDP `module.` / compile `_orig_mod.` prefixes)."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return {k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()}


def save_checkpoint(run_dir: str | os.PathLike, model: torch.nn.Module, state: dict) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_safetensors(run_dir / WEIGHTS_FILE, plain_state_dict(model))
    write_json(run_dir / STATE_FILE, state)


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    run_dir = Path(run_dir)
    weights, state = run_dir / WEIGHTS_FILE, run_dir / STATE_FILE
    for p in (weights, state):
        if not p.is_file():
            raise PgolfError(f"{p}: not found; is {run_dir} a pgolf run directory (pgolf train --out)?")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise PgolfError(f"{weights}: unreadable checkpoint ({exc})") from None
    try:
        meta = json.loads(state.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PgolfError(f"{state}: invalid JSON ({exc.msg})") from None
    return tensors, meta
