"""The bottom floor's device and process-group plumbing, shared by training, evaluation, the audit
and the planner, and kept out of model code.

Under `torchrun` (RANK/WORLD_SIZE/LOCAL_RANK set) the process group uses NCCL on CUDA and gloo
on CPU; otherwise everything runs in one process.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Runtime:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.device.type == "cuda" else None


def autocast_context(runtime: Runtime):
    """bf16 autocast on CUDA (the contest's mixed precision); nothing on CPU."""
    if runtime.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=runtime.device.type, dtype=runtime.autocast_dtype)


def device_name(device: torch.device) -> str:
    """The GPU's name ('NVIDIA H100 80GB HBM3') on CUDA, else the device type ('cpu')."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def is_main_process() -> bool:
    """Rank 0 of the process group, or of the torchrun launch that has not started one yet (a single
    process otherwise): the one that prints and writes."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def init_runtime(device: str = "auto") -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        # An explicit OMP_NUM_THREADS wins; otherwise split the cores this process may run on
        # (its affinity, so `taskset` is respected) among the local ranks.
        if "OMP_NUM_THREADS" not in os.environ:
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
            torch.set_num_threads(max(1, usable_cpus() // max(local_world, 1)))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(rank=rank, world_size=world, local_rank=local_rank, device=dev)


# Each batch shape, grad mode and model instance is one compiled entry of GPT.forward's code
# object; training, validation and the eval pipeline's final partial batches exceed dynamo's
# default of 8 entries, after which it silently falls back to eager.
COMPILE_CACHE_ENTRIES = 64


def compile_module(module: torch.nn.Module) -> torch.nn.Module:
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), COMPILE_CACHE_ENTRIES))
    return torch.compile(module, dynamic=False)


def data_parallel(module: torch.nn.Module, runtime: Runtime) -> torch.nn.Module:
    """`module` wrapped in DDP when several ranks train. Under torch's fake process group (the
    planner's emulated world: one process posing as rank 0 of N) collectives move nothing, and DDP's
    gradient hook is given the local gradients back as the "reduced" ones."""
    if not runtime.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    wrapped = DDP(module, device_ids=[runtime.local_rank] if runtime.device.type == "cuda" else None,
                  broadcast_buffers=False, gradient_as_bucket_view=True)
    if dist.get_backend() == "fake":
        def local_gradients(_, bucket):
            done = torch.futures.Future()
            done.set_result(bucket.buffer())
            return done

        wrapped.register_comm_hook(None, local_gradients)
    return wrapped


def all_reduce_sum_(tensor: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Sum over the ranks of `runtime`; a one-process runtime (e.g. rank 0 auditing alone under
    torchrun) reduces nothing, whatever process group exists."""
    if runtime.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def share_from_main(obj, runtime: Runtime):
    """Rank 0's (JSON-able) object on every rank, after a barrier; `obj` itself in one process."""
    if not runtime.distributed:
        return obj
    box = [obj if runtime.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
