"""Weight-sharing building blocks: separate weights for every state that may feed them.

NAO's supernet does not share one set of weights per operation: the weights an
operation uses depend on which state it reads (the released ``WSSepConv``, ``WSBN``,
``WSIdentity``, ``WSReLUConvBN``). Here an operation that node ``j`` may apply to
inputs ``0 .. j+1`` is simply one discrete operation (``models.operations``) per input
id, built with the stride that input needs; a forward pass runs only the chosen one.

One difference from the released code, on purpose: the released ``WSBN`` keeps one set
of running statistics for all input ids, here each id has its own. Running statistics
are never used by the search (training and scoring both normalise with batch
statistics), so the networks compute the same function.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from naonet.models.operations import build_operation
from naonet.spaces.cell_space import read_stride


class PerInputOperation(nn.Module):
    """One operation with its own weights (and BN affine parameters) per input id.

    In a reduction cell the cell inputs (ids 0 and 1) are read with stride 2, the
    node outputs with stride 1: each id's operation is built with its stride.
    """

    def __init__(self, name: str, channels: int, num_inputs: int, reduction: bool):
        super().__init__()
        self.name = name
        self.per_input = nn.ModuleList(
            build_operation(name, channels, read_stride(state, reduction))
            for state in range(num_inputs)
        )

    def forward(self, x: torch.Tensor, input_id: int) -> torch.Tensor:
        return self.per_input[input_id](x)


class LooseEndCombine(nn.Module):
    """ReLU, 1x1 convolution back to ``channels``, BN, over the concatenated loose ends.

    The convolution's weights are held per state id and assembled for the loose ends
    of the architecture at hand (the released ``final_combine_conv``); the BN is shared.
    """

    def __init__(self, num_states: int, channels: int):
        super().__init__()
        self.weights = nn.ParameterList(
            nn.Parameter(nn.init.kaiming_normal_(torch.empty(channels, channels, 1, 1)))
            for _ in range(num_states)
        )
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, states: Sequence[torch.Tensor], state_ids: Sequence[int]) -> torch.Tensor:
        x = torch.cat(list(states), dim=1)  # [batch, channels * loose ends, height, width]
        weight = torch.cat([self.weights[i] for i in state_ids], dim=1)  # [C, C * loose, 1, 1]
        return self.bn(F.conv2d(F.relu(x), weight))
