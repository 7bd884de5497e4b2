"""The bottom floor's file writers: every file pgolf writes lands whole or not at all.

A write goes to `NAME.tmp`, is fsynced, then renamed over `NAME`; on failure (e.g. a full disk)
the previous file is untouched, no partial file is left, and the error is one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO, Callable

import torch
from safetensors.torch import save

from pgolf.errors import PgolfError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write(file)` fills `NAME.tmp`, which is then fsynced and renamed over `NAME` (large outputs
    such as shards stream into it without being joined in memory first)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
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


def ensure_writable(directory: Path, flag: str = "--out") -> Path:
    """Create `directory` and prove a byte can be written in it, before any work that would be lost
    when the first real write fails (a read-only mount, a full disk, a file-size limit)."""
    directory = Path(directory)
    probe = directory / f".pgolf-write-check-{os.getpid()}"  # one per process: ranks probe side by side
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
        raise PgolfError(f"{directory}: cannot write there ({exc.strerror or exc}); nothing was started — "
                         f"choose another {flag} or free space") from None
    return directory
