"""Discrete NAO cells: calibrate two inputs, run the nodes, concatenate the loose ends."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from naonet.models.operations import FactorizedReduce, ReLUConvBN, build_operation
from naonet.spaces import Cell as CellArch
from naonet.spaces import CellSearchSpace
from naonet.spaces.cell_space import is_reduced, read_stride


@dataclass(frozen=True)
class StateShape:
    """Channels and downsampling factor of a feature map (the factor, not the size,
    decides where reductions go, so any input resolution works)."""

    channels: int
    scale: int


def drop_path(x: torch.Tensor, keep_prob: torch.Tensor) -> torch.Tensor:
    """Zero whole samples with probability ``1 - keep_prob``, rescaling the rest."""
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)
    mask.bernoulli_(keep_prob.to(x.dtype))
    return x / keep_prob * mask


class CalibrateInputs(nn.Module):
    """Bring both cell inputs to ``channels`` channels at the resolution of ``h[k-1]``."""

    def __init__(self, shape0: StateShape, shape1: StateShape, channels: int):
        super().__init__()
        if shape0.scale != shape1.scale:
            if shape1.scale != 2 * shape0.scale:
                raise ValueError(f"cell inputs at scales {shape0.scale} and {shape1.scale}")
            self.preprocess0: nn.Module = FactorizedReduce(shape0.channels, channels,
                                                           relu_first=True)
        elif shape0.channels != channels:
            self.preprocess0 = ReLUConvBN(shape0.channels, channels)
        else:
            self.preprocess0 = nn.Identity()
        self.preprocess1: nn.Module = (ReLUConvBN(shape1.channels, channels)
                                       if shape1.channels != channels else nn.Identity())

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.preprocess0(s0), self.preprocess1(s1)


class NodeBranch(nn.Module):
    """One (input, op) branch of a node, with optional drop path."""

    def __init__(self, op_name: str, channels: int, stride: int, droppable: bool):
        super().__init__()
        self.op = build_operation(op_name, channels, stride)
        self.droppable = droppable

    def forward(self, x: torch.Tensor, keep_prob: torch.Tensor | None) -> torch.Tensor:
        x = self.op(x)
        if keep_prob is not None and self.droppable and self.training:
            x = drop_path(x, keep_prob)
        return x


class DiscreteCell(nn.Module):
    """A normal or reduction cell of a fixed architecture."""

    def __init__(self, space: CellSearchSpace, arch: CellArch, shape0: StateShape,
                 shape1: StateShape, channels: int, reduction: bool, depth_ratio: float,
                 exempt_pass_through: bool = False):
        super().__init__()
        exempt = space.drop_path_exempt if exempt_pass_through else ()
        self.depth_ratio = depth_ratio  # (cell index + 1) / number of cells, for drop path
        self.inputs = [node.inputs for node in arch.nodes]
        self.loose_ends = arch.loose_ends()
        self.calibrate = CalibrateInputs(shape0, shape1, channels)
        self.nodes = nn.ModuleList()
        for node in arch.nodes:
            branches = nn.ModuleList()
            for state, op in zip(node.inputs, node.ops):
                name = space.op_names[op]
                branches.append(NodeBranch(name, channels, read_stride(state, reduction),
                                           droppable=name not in exempt))
            self.nodes.append(branches)
        # A loose end that is a cell input of a reduction cell is still at full size.
        self.reduced_loose_ends = [s for s in self.loose_ends if is_reduced(s, reduction)]
        self.output_reducers = nn.ModuleList(
            FactorizedReduce(channels, channels) for _ in self.reduced_loose_ends)
        out_scale = shape1.scale * (2 if reduction else 1)
        self.out_shape = StateShape(channels * len(self.loose_ends), out_scale)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor,
                drop_rate: torch.Tensor | None = None) -> torch.Tensor:
        keep_prob = None
        if drop_rate is not None:
            keep_prob = 1.0 - drop_rate * self.depth_ratio
        states = list(self.calibrate(s0, s1))
        for (input_a, input_b), (branch_a, branch_b) in zip(self.inputs, self.nodes):
            states.append(branch_a(states[input_a], keep_prob) +
                          branch_b(states[input_b], keep_prob))
        for state, reducer in zip(self.reduced_loose_ends, self.output_reducers):
            states[state] = reducer(states[state])
        return torch.cat([states[s] for s in self.loose_ends], dim=1)
