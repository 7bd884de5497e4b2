"""Weight averaging during training, registered by name (`train.averaging`).

- "ema" (PR #287; 11L lineage): an fp32 copy of every parameter and buffer, initialised at
  step 0 with no bias correction, θ̄ ← d·θ̄ + (1−d)·θ after every optimizer step (d = 0.997,
  half-life ≈ 231 steps; 0.9965 in later records). The final weights are θ̄.
- "swa": the uniform average of snapshots taken every `swa_every` steps once the LR multiplier
  is below `swa_start_lr_scale` (the 2026-03-20 SWA records); the final weights are that average
  (falling back to the live weights if no snapshot was taken).
- "polyak": the same EMA with d = 0.998, the TTT-time averaging of #700/#731 (its eval-time use
  belongs to the TTT method; registered here so one implementation serves both).
The seeds' "tight SWA" was collected but never applied (docs/techniques.md), so their presets use
"ema" alone.
"""

from __future__ import annotations

import torch
from torch import nn

from pgolf.config import TrainConfig
from pgolf.registry import Registry


class Averager:
    def update(self, model: nn.Module, step: int, lr_scale: float) -> None: ...

    def apply_to(self, model: nn.Module) -> None: ...


AVERAGERS: Registry[type] = Registry("weight averaging")


@AVERAGERS.register("none")
class NoAveraging(Averager):
    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        pass

    def update(self, model, step, lr_scale):
        return None

    def apply_to(self, model):
        return None


@AVERAGERS.register("ema")
class EMA(Averager):
    def __init__(self, model: nn.Module, cfg: TrainConfig, decay: float | None = None) -> None:
        self.decay = cfg.ema_decay if decay is None else decay
        self.names = [n for n, t in model.state_dict().items() if t.is_floating_point()]
        state = model.state_dict()
        self.shadow = [state[n].detach().float().clone() for n in self.names]

    @torch.no_grad()
    def update(self, model, step, lr_scale):
        state = model.state_dict()
        live = [state[n].detach().float() for n in self.names]
        torch._foreach_lerp_(self.shadow, live, 1.0 - self.decay)

    @torch.no_grad()
    def apply_to(self, model):
        state = model.state_dict()
        for n, avg in zip(self.names, self.shadow):
            state[n].copy_(avg.to(state[n].dtype))


@AVERAGERS.register("polyak")
class Polyak(EMA):
    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        super().__init__(model, cfg, decay=0.998)


@AVERAGERS.register("swa")
class SWA(Averager):
    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        self.every, self.start = cfg.swa_every, cfg.swa_start_lr_scale
        self.names = [n for n, t in model.state_dict().items() if t.is_floating_point()]
        self.sum: list[torch.Tensor] | None = None
        self.count = 0

    @torch.no_grad()
    def update(self, model, step, lr_scale):
        if lr_scale >= self.start or step % self.every:
            return
        state = model.state_dict()
        live = [state[n].detach().float() for n in self.names]
        if self.sum is None:
            self.sum = [t.clone() for t in live]
        else:
            torch._foreach_add_(self.sum, live)
        self.count += 1

    @torch.no_grad()
    def apply_to(self, model):
        if not self.count:
            return
        state = model.state_dict()
        for n, total in zip(self.names, self.sum):
            state[n].copy_((total / self.count).to(state[n].dtype))


def build_averager(model: nn.Module, cfg: TrainConfig) -> Averager:
    return AVERAGERS.get(cfg.averaging)(model, cfg)
