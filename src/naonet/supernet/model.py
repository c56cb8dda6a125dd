"""The one-shot supernet: every node holds every operation, a step runs one architecture.

``Supernet(space, config)`` has the macro skeleton of the discrete NAONet (CIFAR or
ImageNet stems, ``3N + 2`` cells with reductions at N and 2N + 1), but

* each of a node's two branches holds every operation of the space, with separate
  weights for every input id it may read (``PerInputOperation``);
* a cell combines its loose ends with a 1x1 convolution whose weights are chosen per
  loose-end id, back to the cell's ``C`` channels (``LooseEndCombine``), so every cell
  outputs ``C`` channels whatever the architecture.

``forward(images, architecture)`` runs only the chosen operations, so only their
parameters receive gradients. It returns ``(logits, aux_logits)`` like ``NAONet``.
"""

from __future__ import annotations

import torch
from torch import nn

from naonet.models.cells import CalibrateInputs, StateShape, drop_path
from naonet.models.networks import CellStack
from naonet.models.operations import FactorizedReduce
from naonet.spaces import Architecture, Cell, CellSearchSpace, Node, get_cell_space
from naonet.spaces.cell_space import NUM_CELL_INPUTS, is_reduced
from naonet.supernet.config import SupernetConfig
from naonet.supernet.operations import LooseEndCombine, PerInputOperation


class SupernetNode(nn.Module):
    """A node's two branches, each with every operation for every input it may read."""

    def __init__(self, space: CellSearchSpace, node_index: int, channels: int,
                 reduction: bool, exempt_pass_through: bool = False):
        super().__init__()
        num_inputs = space.num_candidate_inputs(node_index)
        self.op_names = space.op_names
        exempt = space.drop_path_exempt if exempt_pass_through else ()
        self.droppable = tuple(name not in exempt for name in space.op_names)
        self.branch_a = self._branch(space, channels, num_inputs, reduction)
        self.branch_b = self._branch(space, channels, num_inputs, reduction)

    @staticmethod
    def _branch(space: CellSearchSpace, channels: int, num_inputs: int,
                reduction: bool) -> nn.ModuleDict:
        return nn.ModuleDict({name: PerInputOperation(name, channels, num_inputs, reduction)
                              for name in space.op_names})

    def _run_branch(self, branch: nn.ModuleDict, x: torch.Tensor, input_id: int, op: int,
                    keep_prob: torch.Tensor | None) -> torch.Tensor:
        x = branch[self.op_names[op]](x, input_id)
        if keep_prob is not None and self.droppable[op]:
            x = drop_path(x, keep_prob)
        return x

    def forward(self, states: list[torch.Tensor], node: Node,
                keep_prob: torch.Tensor | None) -> torch.Tensor:
        """``op_a(states[input_a]) + op_b(states[input_b])``; drop path if ``keep_prob``."""
        a = self._run_branch(self.branch_a, states[node.input_a], node.input_a, node.op_a,
                             keep_prob)
        b = self._run_branch(self.branch_b, states[node.input_b], node.input_b, node.op_b,
                             keep_prob)
        return a + b


class SupernetCell(nn.Module):
    """A normal or reduction cell that can run any cell of the space."""

    def __init__(self, space: CellSearchSpace, shape0: StateShape, shape1: StateShape,
                 channels: int, reduction: bool, depth_ratio: float,
                 exempt_pass_through: bool = False):
        super().__init__()
        self.reduction = reduction
        self.depth_ratio = depth_ratio  # (cell index + 1) / number of cells, for drop path
        self.calibrate = CalibrateInputs(shape0, shape1, channels)
        self.nodes = nn.ModuleList(SupernetNode(space, index, channels, reduction,
                                                exempt_pass_through)
                                   for index in range(space.num_nodes))
        # A loose end that is a cell input of a reduction cell is still at full size.
        self.output_reducers = nn.ModuleList(
            FactorizedReduce(channels, channels) for _ in range(NUM_CELL_INPUTS if reduction else 0)
        )
        self.combine = LooseEndCombine(space.num_states, channels)
        self.out_shape = StateShape(channels, shape1.scale * (2 if reduction else 1))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, cell: Cell,
                drop_rate: torch.Tensor | None = None) -> torch.Tensor:
        keep_prob = None if drop_rate is None else 1.0 - drop_rate * self.depth_ratio
        states = list(self.calibrate(s0, s1))  # each [batch, C, height, width]
        for node, module in zip(cell.nodes, self.nodes):
            states.append(module(states, node, keep_prob))
        loose_ends = cell.loose_ends()
        outputs = [self.output_reducers[state](states[state])
                   if is_reduced(state, self.reduction) else states[state]
                   for state in loose_ends]
        return self.combine(outputs, loose_ends)  # [batch, C, height, width]


class Supernet(CellStack):
    """The weight-sharing network of a search space; ``forward(images, architecture)``."""

    def __init__(self, space: str | CellSearchSpace | None = None,
                 config: SupernetConfig | None = None):
        space = get_cell_space(space)
        config = config or SupernetConfig()

        def make_cell(shape0, shape1, channels, reduction, depth_ratio):
            return SupernetCell(space, shape0, shape1, channels, reduction, depth_ratio,
                                config.drop_path_exempts_pass_through)

        super().__init__(config, make_cell)
        self.space = space

    def network_config(self):
        """The discrete network of the same size (balanced sampling counts its parameters)."""
        return self.config.network_config()

    def forward(self, images: torch.Tensor, architecture: Architecture
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of ``architecture`` (normal and reduction cell) on ``images``
        ``[batch, 3, height, width]``; ``aux_logits`` only in training with the aux head."""
        architecture = self.space.as_architecture(architecture, "the supernet")

        def run_cell(cell, s0, s1, drop_rate):
            cell_arch = architecture.reduction if cell.reduction else architecture.normal
            return cell(s0, s1, cell_arch, drop_rate)

        return self._run(images, run_cell)
