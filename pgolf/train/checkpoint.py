"""Checkpoints: model weights in safetensors (no pickle) plus a JSON state file, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from pgolf.errors import PgolfError

WEIGHTS_NAME = "model.safetensors"
STATE_NAME = "state.json"


def plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict of the underlying module (no DDP `module.` / compile `_orig_mod.` prefixes)."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return {k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        # e.g. ENOSPC: the previous file (if any) is untouched and no partial file is left behind
        raise PgolfError(f"{path}: could not write ({exc.strerror or exc}); nothing was changed — free space "
                         "or choose another --out and retry") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Tensors (and string metadata) as one safetensors file, written like every other file here."""
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def save_checkpoint(run_dir: str | os.PathLike, model: torch.nn.Module, state: dict) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_safetensors(run_dir / WEIGHTS_NAME, plain_state_dict(model))
    write_json(run_dir / STATE_NAME, state)


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    run_dir = Path(run_dir)
    weights, state = run_dir / WEIGHTS_NAME, run_dir / STATE_NAME
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
