"""The NAS-Bench-201 network for any cell of an :class:`NB201Space`.

Macro structure of the benchmark (Dong & Yang 2020): a 3x3 conv + BN stem, three stages
of ``cells_per_stage`` cells with ``C``, ``2C``, ``4C`` channels, a residual reduction
block between stages, then BN-ReLU, global average pooling and a linear classifier.
Ops are built by name from :data:`OPERATIONS`; ``norm`` decides how BatchNorm behaves so
the discrete network and the weight-sharing supernet share every building block.
``build_nb201_network(architecture, config)`` is the public constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from naonet.errors import UserError
from naonet.models.networks import count_parameters
from naonet.models.operations import AvgPool, ReLUConvBN
from naonet.options import check_field_types
from naonet.spaces.nb201 import ZERO_OP, NB201Architecture, NB201Space

Norm = Callable[[int], nn.Module]


@dataclass(frozen=True)
class NB201NetworkConfig:
    """Width of the first stage, cells per stage and classes (benchmark: 16, 5, 10)."""

    channels: int = 16
    cells_per_stage: int = 5
    num_classes: int = 10
    stages: int = 3

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("channels", "cells_per_stage", "num_classes", "stages"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")

    def stage_channels(self) -> list[int]:
        """Channels of each stage: doubled at every reduction."""
        return [self.channels * 2 ** stage for stage in range(self.stages)]

    @property
    def skeleton(self) -> str:
        """The benchmark network takes CIFAR-sized images (its stem does not reduce)."""
        return "cifar"

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The network's size in a few words, for messages."""
        from naonet.text import counted

        return (f"C {self.channels}, {counted(self.cells_per_stage, 'cell')} per stage, "
                f"{counted(self.num_classes, 'class', 'classes')}")


def infer_nb201_config(state_dict, network: str = "nb201", **overrides) -> NB201NetworkConfig:
    """The config a NAS-Bench-201 network's state_dict was made with: the width from the
    stem, the classes from the classifier, and stages and cells per stage from the
    residual blocks between stages (the layers with a ``conv_a``: cells whose edges are
    all weightless have no weights to count)."""
    from naonet.spaces.protocol import config_from_fields

    blocks = sorted({int(key.split(".")[1]) for key in state_dict
                     if key.startswith("layers.") and ".conv_a." in key})
    if "stem.0.weight" not in state_dict or "classifier.weight" not in state_dict or not blocks:
        raise UserError(f"the weights are not those of a whole {network} network (its stem, "
                        "residual blocks and classifier); pass the whole state_dict")
    values = dict(channels=int(state_dict["stem.0.weight"].shape[0]),
                  cells_per_stage=blocks[0], stages=len(blocks) + 1,
                  num_classes=int(state_dict["classifier.weight"].shape[0]))
    values.update({key: value for key, value in overrides.items() if value is not None})
    return config_from_fields(NB201NetworkConfig, values, network)


def tracked_batch_norm(channels: int) -> nn.Module:
    """BatchNorm of a stand-alone network: affine, with running statistics."""
    return nn.BatchNorm2d(channels)


def relu_conv_norm(c_in: int, c_out: int, kernel_size: int, stride: int,
                   norm: Norm) -> ReLUConvBN:
    """The benchmark's ReLU-Conv-norm: 'same' padding."""
    return ReLUConvBN(c_in, c_out, kernel_size, stride, kernel_size // 2, norm)


# OPERATIONS[name](channels, norm) -> a C -> C module; 'none' has no module (see cells).
# The average pool counts only real pixels at the border, as the NAO cells' does.
OPERATIONS: dict[str, Callable[[int, Norm], nn.Module]] = {
    "skip_connect": lambda channels, norm: nn.Identity(),
    "nor_conv_1x1": lambda channels, norm: relu_conv_norm(channels, channels, 1, 1, norm),
    "nor_conv_3x3": lambda channels, norm: relu_conv_norm(channels, channels, 3, 1, norm),
    "avg_pool_3x3": lambda channels, norm: AvgPool(1),
}


def build_operation(name: str, channels: int, norm: Norm = tracked_batch_norm
                    ) -> nn.Module | None:
    """The module of op ``name`` (None for ``none``, whose output is zero)."""
    if name == ZERO_OP:
        return None
    if name not in OPERATIONS:
        raise UserError(f"no nb201 operation {name!r}; known: {ZERO_OP}, "
                        f"{', '.join(OPERATIONS)}")
    return OPERATIONS[name](channels, norm)


def run_cell(x: torch.Tensor, space: NB201Space,
             op_on_edge: Callable[[int], nn.Module | None]) -> torch.Tensor:
    """A cell of ``space`` on ``x``: node j is the sum, over the edges i -> j in the
    space's order, of the edge's op on node i (``op_on_edge(edge)``; None for an edge that
    carries nothing, zeros for a node that receives nothing); the last node is the output."""
    nodes = [x]
    for target in range(1, space.num_nodes):
        terms = []
        for edge, (source, to) in enumerate(space.edges):
            op = op_on_edge(edge) if to == target else None
            if op is not None:
                terms.append(op(nodes[source]))
        nodes.append(sum_or_zeros(terms, x))
    return nodes[-1]


def sum_or_zeros(terms: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The sum of a node's incoming terms; zeros when every incoming edge is ``none``."""
    if not terms:
        return torch.zeros_like(like)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


class NB201Cell(nn.Module):
    """The discrete cell: node j = sum of op(edge i -> j)(node i) over i < j."""

    def __init__(self, architecture: NB201Architecture, channels: int,
                 norm: Norm = tracked_batch_norm):
        super().__init__()
        self.space = architecture.space
        self.edge_ops = nn.ModuleDict()
        for edge, name in enumerate(architecture.op_names):
            module = build_operation(name, channels, norm)
            if module is not None:  # 'none' edges contribute nothing
                self.edge_ops[str(edge)] = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_cell(x, self.space, lambda edge: self.edge_ops[str(edge)]
                        if str(edge) in self.edge_ops else None)


class ResidualReduction(nn.Module):
    """ResNet basic block with stride 2: two ReLU-Conv3x3-norm, AvgPool + 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, norm: Norm = tracked_batch_norm):
        super().__init__()
        self.conv_a = relu_conv_norm(c_in, c_out, 3, 2, norm)
        self.conv_b = relu_conv_norm(c_out, c_out, 3, 1, norm)
        # ceil_mode: at an odd size the shortcut keeps the strided convolution's
        # ceil(size / 2) (the benchmark's even sizes are unchanged).
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2, ceil_mode=True),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NB201Skeleton(nn.Module):
    """Stem, stages of cells with reductions between them, and the classifier head.

    ``make_cell(channels)`` builds each cell; ``forward(x, *cell_args)`` passes
    ``cell_args`` to every cell (the supernet passes the sampled architecture).
    """

    def __init__(self, config: NB201NetworkConfig, make_cell: Callable[[int], nn.Module],
                 norm: Norm = tracked_batch_norm):
        super().__init__()
        self.config = config
        widths = config.stage_channels()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
                                  norm(widths[0]))
        layers, is_cell = [], []
        for stage, width in enumerate(widths):
            if stage > 0:
                layers.append(ResidualReduction(widths[stage - 1], width, norm))
                is_cell.append(False)
            for _ in range(config.cells_per_stage):
                layers.append(make_cell(width))
                is_cell.append(True)
        self.layers = nn.ModuleList(layers)
        self.is_cell = is_cell
        self.lastact = nn.Sequential(norm(widths[-1]), nn.ReLU())
        self.classifier = nn.Linear(widths[-1], config.num_classes)

    def forward(self, x: torch.Tensor, *cell_args) -> tuple[torch.Tensor, None]:
        """``(logits [B, classes], None)``: the outputs of every naonet network (this
        skeleton has no auxiliary head)."""
        x = self.stem(x)  # [B, C, H, W]
        for layer, is_cell in zip(self.layers, self.is_cell):
            x = layer(x, *cell_args) if is_cell else layer(x)
        x = self.lastact(x).mean(dim=(2, 3))  # [B, 4C]
        return self.classifier(x), None


class NB201Network(NB201Skeleton):
    """The benchmark's network for one architecture; ``forward(x)`` returns logits."""

    def __init__(self, architecture: NB201Architecture, config: NB201NetworkConfig):
        super().__init__(config, lambda channels: NB201Cell(architecture, channels))
        self.architecture = architecture


def build_nb201_network(architecture: NB201Architecture,
                        config: NB201NetworkConfig | None = None) -> NB201Network:
    """The benchmark network of ``architecture`` (default: the CIFAR-10 configuration)."""
    return NB201Network(architecture, config or NB201NetworkConfig())


class CostCounter:
    """Parameters and multiply-adds of the discrete network of any architecture, without
    building it.

    Each is the skeleton's (stem, reductions, head) plus, for every cell, the op on each
    edge; every op is measured once per stage (its width and resolution), on the 'meta'
    device: shapes only, so any size counts without memory.
    """

    def __init__(self, space, config: NB201NetworkConfig | None = None,
                 image_size: int = 32):
        from naonet.models.complexity import count_multiply_adds, halved

        self.space = space
        self.config = config or NB201NetworkConfig()
        empty = space.architecture([space.op_index(ZERO_OP)] * space.num_edges) \
            if ZERO_OP in space.op_names else None
        with torch.device("meta"):
            skeleton = (build_nb201_network(empty, self.config) if empty is not None
                        else NB201Skeleton(self.config, lambda channels: nn.Identity()))
            self.skeleton = (count_parameters(skeleton),
                             count_multiply_adds(skeleton, (3, image_size, image_size)))
            # per_op[o] = (parameters, multiply-adds) of op o summed over every cell
            self.per_op = []
            for name in space.op_names:
                parameters = macs = 0
                side = image_size
                for width in self.config.stage_channels():
                    module = build_operation(name, width)
                    if module is not None:
                        parameters += count_parameters(module)
                        macs += count_multiply_adds(module, (width, side, side))
                    side = halved(side)  # the reduction's stride-2 3x3 convolution
                self.per_op.append((parameters * self.config.cells_per_stage,
                                    macs * self.config.cells_per_stage))

    def parameters(self, architecture: NB201Architecture) -> int:
        return self.skeleton[0] + sum(self.per_op[op][0] for op in architecture.ops)

    def multiply_adds(self, architecture: NB201Architecture) -> int:
        return self.skeleton[1] + sum(self.per_op[op][1] for op in architecture.ops)
