"""A few-shot supernet (Zhao et al. 2021): one copy of a supernet per choice at one
position of the space's integer coding.

Weight sharing makes architectures that differ in one decision share every other
weight. On NAS-Bench-201 that is what mis-ranks the residual cells (``skip_connect`` on
edge 0 -> 3): their convolutions share weights with cells whose convolutional path runs
straight from input to output, and the supernet learns that path instead
(docs/nas-bench-201.md). Splitting on that edge gives each choice its own copy of all
the weights, so the residual cells train among themselves.

The copies start as one: until :meth:`FewShotSupernet.split` every architecture runs on
the first copy (the one-shot supernet), and the split copies its weights, and the
optimizer's momentum, into the others, which then train on their own architectures
(the paper's transfer from the one-shot supernet).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


class FewShotSupernet(nn.Module):
    """``forward(x, architecture)`` runs the copy of the architecture's choice at
    ``position``, once :meth:`split`; before, the first copy for every architecture."""

    def __init__(self, build: Callable[[], nn.Module], position: int, choices: int):
        super().__init__()
        if choices < 2:
            raise ValueError(f"a few-shot split needs a position with >= 2 choices, "
                             f"got {choices}")
        first = build()
        self.parts = nn.ModuleList([first] + [copy.deepcopy(first)
                                              for _ in range(choices - 1)])
        self.position = position
        # a buffer, so checkpoints carry it; mirrored in a bool so no step reads a tensor
        self.register_buffer("split_done", torch.zeros((), dtype=torch.bool))
        self.is_split = False
        self.register_load_state_dict_post_hook(FewShotSupernet._mirror_split)

    @staticmethod
    def _mirror_split(module: FewShotSupernet, incompatible_keys) -> None:
        module.is_split = bool(module.split_done)

    def part_of(self, architecture) -> int:
        """Index of the copy that runs ``architecture`` now."""
        return choice_at(self.position)(architecture) if self.is_split else 0

    def split(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Copy the first copy's weights (and its momentum in ``optimizer``) into every
        other copy; from now on each choice trains and scores on its own copy."""
        first = self.parts[0]
        with torch.no_grad():
            for part in self.parts[1:]:
                for source, target in zip(first.state_dict().values(),
                                          part.state_dict().values()):
                    target.copy_(source)  # in place: DDP and the optimizer keep their view
                if optimizer is not None:
                    _copy_optimizer_state(optimizer, first, part)
        self.split_done.fill_(True)
        self.is_split = True

    def forward(self, x: torch.Tensor, architecture):
        return self.parts[self.part_of(architecture)](x, architecture)

    def set_training_progress(self, fraction: float) -> None:
        for part in self.parts:
            part.set_training_progress(fraction)

    def network_config(self):
        """The discrete network of the same size (every copy has it)."""
        return self.parts[0].network_config()


def choice_at(position: int) -> Callable:
    """architecture -> its choice at ``position`` of its space's integer coding (the copy
    of a few-shot supernet split there that runs it)."""
    def choice(architecture) -> int:
        return architecture.space.to_integers(architecture)[position]
    return choice


def _copy_optimizer_state(optimizer: torch.optim.Optimizer, source: nn.Module,
                          target: nn.Module) -> None:
    """``target``'s parameters take over the optimizer state of ``source``'s."""
    for from_param, to_param in zip(source.parameters(), target.parameters()):
        state = optimizer.state.get(from_param)
        if state:
            optimizer.state[to_param] = {key: value.clone() if torch.is_tensor(value)
                                         else value for key, value in state.items()}
        else:
            optimizer.state.pop(to_param, None)
