"""MLP activations, registered by name (`[model] activation = "..."`)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from pgolf.registry import Registry

ACTIVATIONS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("activation")


@ACTIVATIONS.register("relu2")
def relu_squared(x: torch.Tensor) -> torch.Tensor:
    """relu(x)^2, the naive baseline's MLP nonlinearity."""
    return torch.relu(x).square()


@ACTIVATIONS.register("leaky_relu2")
def leaky_relu_squared(x: torch.Tensor) -> torch.Tensor:
    """leaky_relu(x, 0.5)^2 (PR #493/#549): negative inputs keep a gradient (0.25·x² after squaring)."""
    return F.leaky_relu(x, negative_slope=0.5).square()
