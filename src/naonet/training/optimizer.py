"""The one optimizer every network and supernet trains with: SGD with momentum and
weight decay, its learning rates scaled with the number of processes when asked."""

from __future__ import annotations

import torch
from torch import nn


def learning_rates(lr: float, lr_min: float, world_size: int,
                   scale_with_world_size: bool) -> tuple[float, float]:
    """(maximum, minimum) learning rate. With ``scale_with_world_size`` both grow with
    the number of processes: each trains on its own batch, so the step's batch is
    ``world_size`` times larger, and the schedule keeps its shape."""
    scale = world_size if scale_with_world_size else 1
    return lr * scale, lr_min * scale


def sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float,
        nesterov: bool = False) -> torch.optim.SGD:
    """SGD with momentum and weight decay on every parameter of ``model`` (the released
    optimizer of the child networks and the supernet; Nesterov's for NAS-Bench-201's
    recipe)."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay, nesterov=nesterov)
