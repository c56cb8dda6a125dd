"""The weight-sharing supernet of an NB201 space.

Every edge of every cell holds every op (each edge has its own weights, as in the
benchmark's one-shot baselines); ``forward(x, architecture)`` runs only the ops the
architecture picks. BatchNorm always normalises with the statistics of the current
batch: running statistics mix architectures and mean nothing for any one of them.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from naonet.models.nb201 import (
    ZERO_OP,
    NB201NetworkConfig,
    NB201Skeleton,
    build_operation,
    run_cell,
)
from naonet.spaces.nb201 import NB201, NB201Architecture, NB201Space


def batch_statistics_norm(channels: int, affine: bool) -> nn.Module:
    """BatchNorm that uses the current batch's statistics in training and evaluation."""
    return nn.BatchNorm2d(channels, affine=affine, track_running_stats=False)


class SharedCell(nn.Module):
    """A cell holding every op on every edge; runs the ops of a given architecture."""

    def __init__(self, space: NB201Space, channels: int, norm):
        super().__init__()
        self.space = space
        self.edge_ops = nn.ModuleList()
        for _ in space.edges:
            ops = nn.ModuleDict()
            for name in space.op_names:
                module = build_operation(name, channels, norm)
                if module is not None:
                    ops[name] = module
            self.edge_ops.append(ops)

    def forward(self, x: torch.Tensor, architecture: NB201Architecture) -> torch.Tensor:
        names = architecture.op_names
        return run_cell(x, self.space, lambda edge: self.edge_ops[edge][names[edge]]
                        if names[edge] != ZERO_OP else None)


class NB201Supernet(NB201Skeleton):
    """The benchmark skeleton with shared cells; ``forward(x, architecture)`` ->
    ``(logits, None)``."""

    def __init__(self, config: NB201NetworkConfig | None = None, space: NB201Space = NB201,
                 affine: bool = False):
        norm = partial(batch_statistics_norm, affine=affine)
        config = config or NB201NetworkConfig()
        super().__init__(config, lambda channels: SharedCell(space, channels, norm), norm)
        self.space = space

    def forward(self, images: torch.Tensor, architecture: NB201Architecture
                ) -> tuple[torch.Tensor, None]:
        """``(logits, None)`` of ``architecture`` on ``images`` ``[batch, 3, height, width]``."""
        return super().forward(images, self.space.as_architecture(architecture, "the supernet"))

    def set_training_progress(self, fraction: float) -> None:
        """The benchmark network has no drop path: nothing depends on progress."""

    def network_config(self) -> NB201NetworkConfig:
        """The discrete network of the same size (balanced sampling counts its parameters)."""
        return self.config
