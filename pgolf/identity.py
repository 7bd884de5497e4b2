"""Which code produced a run: pgolf's version, the git commit of its checkout (or, for the exported
single-file `train_gpt.py`, the sha256 of that file; an installed copy is named by its version),
torch's version and the device's name.
Written in the `train.log` header and in `state.json`, so two runs' numbers can be compared
knowing whether the same code made them."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from pgolf.runtime import device_name


def pgolf_version() -> str:
    try:
        return metadata.version("pgolf")
    except metadata.PackageNotFoundError:
        return "not installed"  # e.g. the exported train_gpt.py on a contest machine


def git_commit(where: Path) -> str | None:
    """HEAD of the git checkout holding `where` (with "+dirty" for uncommitted tracked changes)."""
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def code_identity(device: torch.device) -> dict[str, str]:
    here = Path(__file__).resolve()
    out = {"pgolf": pgolf_version()}
    if here.name != "identity.py":  # an exported single file: the code is the file's bytes
        out["script_sha256"] = hashlib.sha256(here.read_bytes()).hexdigest()
    elif commit := git_commit(here.parent):  # a checkout; an installed copy is named by its version
        out["git_commit"] = commit
    out["torch"] = torch.__version__
    name = device_name(device)
    out["device"] = name if device.type == "cuda" else f"{name} ({platform.processor() or platform.machine()})"
    return out


def identity_line(identity: dict[str, str]) -> str:
    """The train.log header line, e.g. `code pgolf:0.1.0 git_commit:ab12… torch:2.13.0 device:…`."""
    return "code " + " ".join(f"{k}:{v}" for k, v in identity.items())
