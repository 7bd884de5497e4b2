"""Muon: momentum SGD whose update is orthogonalised by a Newton–Schulz iteration.

Per step, for each 2-D matrix: m ← μ·m + g; g' = g + μ·m (Nesterov); O = NS5(g');
W ← W − lr·O·√max(1, rows/cols). Under torchrun each rank orthogonalises only the matrices
i ≡ rank (mod world) and one all-reduce of a flat buffer shares the updates, so the work is not
repeated N times (the contest's scheme; DDP has already averaged the gradients).

Parallel Muon / parameter banking (PR #399; #549, #1150, #1207) stacks same-shape matrices into
3-D banks and overlaps reduce-scatter, batched NS5 and all-gather. It changes speed, not the
update (#549's ablation: ±0.0000 bpb), so it is not a separate optimizer here; the sharding
above is the same maths. (Its one side effect in the seeds — banked weights bypassing late-QAT
fake-quant — is a bug we do not reproduce.) Decoupled weight decay W ← W·(1 − lr_t·wd) is the
11L lineage's Muon WD (0.04).

Frontier options: MuonEq-R (#1285) divides each row of the momentum update by its L2 norm before
Newton–Schulz; Polar-Express (#1787; Amsel et al. 2025) replaces the fixed quintic coefficients by
one minimax-optimal tuple per iteration (5 iterations).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from pgolf.config import MUON_COEFFICIENTS

NS_COEFFS = (3.4445, -4.7750, 2.0315)
POLAR_EXPRESS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)
COEFFICIENTS = MUON_COEFFICIENTS


def newton_schulz5(grad: torch.Tensor, steps: int = 5, eps: float = 1e-7, coefficients: str = "quintic") -> torch.Tensor:
    """Approximately orthogonalise a matrix with the quintic Newton–Schulz iteration (fixed
    coefficients, or Polar-Express's per-iteration ones; past its five, the last tuple repeats).

    Runs in bf16 on CUDA (as the contest does) and in fp32 elsewhere, where bf16 matmuls are
    slow and gain nothing.
    """
    dtype = torch.bfloat16 if grad.is_cuda else torch.float32
    x = grad.to(dtype)
    x = x / (x.norm() + eps)
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    for k in range(steps):
        a, b, c = NS_COEFFS if coefficients == "quintic" else POLAR_EXPRESS[min(k, len(POLAR_EXPRESS) - 1)]
        gram = x @ x.T
        poly = b * gram + c * gram @ gram
        x = a * x + poly @ x
    return x.T if transposed else x


_compiled_ns5 = None


def orthogonalize(grad: torch.Tensor, steps: int, coefficients: str = "quintic") -> torch.Tensor:
    """NS5, compiled on CUDA (fuses the scalar-matrix arithmetic between the matmuls); eager on
    CPU, where compiling it for every matrix shape costs more than it saves."""
    global _compiled_ns5
    if not grad.is_cuda:
        return newton_schulz5(grad, steps, coefficients=coefficients)
    if _compiled_ns5 is None:
        _compiled_ns5 = torch.compile(newton_schulz5)
    return _compiled_ns5(grad, steps, coefficients=coefficients)


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.95, backend_steps: int = 5,
                 nesterov: bool = True, weight_decay: float = 0.0, row_normalize: bool = False,
                 coefficients: str = "quintic", momentum_dtype: torch.dtype | None = None) -> None:
        if coefficients not in COEFFICIENTS:
            from pgolf.errors import ConfigError

            raise ConfigError(f"train.muon_coefficients must be one of {', '.join(COEFFICIENTS)}, got {coefficients!r}")
        defaults = dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov,
                        weight_decay=weight_decay, row_normalize=row_normalize, coefficients=coefficients)
        super().__init__(params, defaults)
        # None: the gradient's dtype. bf16 (#1855, train.bf16_state on CUDA): the gradient is cast
        # first and the momentum, the Nesterov sum and the row normalisation run in bf16.
        self.momentum_dtype = momentum_dtype

    @torch.no_grad()
    def step(self, closure=None):
        distributed = dist.is_available() and dist.is_initialized()
        world = dist.get_world_size() if distributed else 1
        rank = dist.get_rank() if distributed else 0
        for group in self.param_groups:
            params = [p for p in group["params"]]
            if not params:
                continue
            lr, mu = group["lr"], group["momentum"]
            flat = torch.zeros(sum(p.numel() for p in params), device=params[0].device,
                               dtype=torch.bfloat16 if params[0].is_cuda else torch.float32)
            offset = 0
            for i, p in enumerate(params):
                n = p.numel()
                if i % world == rank and p.grad is not None:
                    g = p.grad if self.momentum_dtype is None else p.grad.to(self.momentum_dtype)
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(g)
                    buf = state["momentum_buffer"]
                    buf.mul_(mu).add_(g)
                    if group["nesterov"]:
                        g = g.add(buf, alpha=mu)
                    if group["row_normalize"]:  # MuonEq-R; the norms in fp32 whatever g's dtype
                        g = g / g.float().norm(dim=-1, keepdim=True).clamp_min(1e-7).to(g.dtype)
                    update = orthogonalize(g, group["backend_steps"], group["coefficients"])
                    update = update * max(1.0, update.size(0) / update.size(1)) ** 0.5
                    flat[offset : offset + n] = update.reshape(-1)
                offset += n
            if distributed and world > 1:
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            wd = group["weight_decay"]
            for p in params:
                n = p.numel()
                if wd:
                    p.mul_(1.0 - lr * wd)
                p.add_(flat[offset : offset + n].view_as(p).to(p.dtype), alpha=-lr)
                offset += n
        return None
