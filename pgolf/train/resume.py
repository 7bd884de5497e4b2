"""Everything a training run needs to continue after a crash, in one atomically replaced
safetensors file (`resume.safetensors`; no pickle): weights, optimizer states, the weight
averager's state, the data stream position, RNG states, the step, the clock and the stop decision,
with the JSON-able parts in the file's metadata. A crash during the write leaves the previous
file intact (temp file + rename)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from pgolf.errors import PgolfError
from pgolf.io import atomic_write_safetensors
from pgolf.train.checkpoint import plain_state_dict
from pgolf.rundir import RESUME_FILE



def _split(obj, prefix: str, tensors: dict) -> object:
    """Replace tensors inside a nested dict/list by references, collecting them in `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {str(k): _split(v, f"{prefix}/{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join(obj, tensors: dict) -> object:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def _optimizer_state(opt: torch.optim.Optimizer) -> dict:
    sd = opt.state_dict()
    return {"state": {str(k): v for k, v in sd["state"].items()}, "param_groups": sd["param_groups"]}


def save_resume(run_dir: Path, step: int, model, optimizers, averager, loader, clock_ms: float,
                extra: dict) -> None:
    tensors: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in plain_state_dict(model).items()}
    meta = {
        "step": step, "clock_ms": clock_ms, "extra": extra, "loader": loader.stream.state(),
        "optimizers": _split([_optimizer_state(o) for o in optimizers], "opt", tensors),
        "averager": _split({k: v for k, v in vars(averager).items() if k not in ("names",)}, "avg", tensors),
        "torch_rng": _split(torch.get_rng_state(), "rng/torch", tensors),
        "numpy_rng": [str(x) if i == 0 else (x.tolist() if isinstance(x, np.ndarray) else x)
                      for i, x in enumerate(np.random.get_state())],
    }
    if torch.cuda.is_available() and next(model.parameters()).is_cuda:
        meta["cuda_rng"] = _split(torch.cuda.get_rng_state(), "rng/cuda", tensors)
    atomic_write_safetensors(Path(run_dir) / RESUME_FILE, tensors, {"pgolf_resume": json.dumps(meta)})


def load_resume(run_dir: Path) -> tuple[dict, dict]:
    """(tensors, meta) of a run's resume file, or a one-line error."""
    path = Path(run_dir) / RESUME_FILE
    if not path.is_file():
        raise PgolfError(f"{path}: no resume state; the run wrote none (set train.checkpoint_every) or is not a run dir")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["pgolf_resume"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise PgolfError(f"{path}: unreadable resume state ({exc.__class__.__name__}); the previous one was "
                         "replaced atomically, so this file is damaged — delete it to start over") from None
    return tensors, meta


def restore(tensors: dict, meta: dict, model, optimizers, averager, loader, device) -> None:
    inner = getattr(model, "_orig_mod", model)
    inner.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
    for opt, sd in zip(optimizers, _join(meta["optimizers"], tensors)):
        opt.load_state_dict({"state": {int(k): v for k, v in sd["state"].items()},
                             "param_groups": sd["param_groups"]})
    for k, v in _join(meta["averager"], tensors).items():
        if isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            v = [t.to(device) for t in v]
        setattr(averager, k, v)
    loader.stream.load_state(meta["loader"])
    torch.set_rng_state(_join(meta["torch_rng"], tensors))
    if "cuda_rng" in meta and torch.cuda.is_available():
        torch.cuda.set_rng_state(_join(meta["cuda_rng"], tensors))
    state = meta["numpy_rng"]
    np.random.set_state((state[0], np.array(state[1], dtype=np.uint32), *state[2:]))
