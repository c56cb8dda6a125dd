"""Parameter counts of discrete NAONets from formulas, without building a network.

Balanced sampling (NAO-V2) weighs every architecture of a pool by the parameter count
of its discrete network; building 1000 networks for that takes minutes, the formulas
here take milliseconds. ``count_network_parameters(architecture, config, include_aux)``
equals ``count_parameters(build_network(architecture, config), include_aux)`` exactly;
the tests check it for both spaces and both skeletons.
"""

from __future__ import annotations

from collections.abc import Callable

from naonet.errors import UserError
from naonet.models.cells import StateShape
from naonet.models.networks import (
    AUX_HIDDEN_CHANNELS,
    AUX_SECOND_KERNEL,
    SKELETONS,
    STEM_MULTIPLIER,
    NetworkConfig,
    cell_layout,
)
from naonet.spaces import Architecture, Cell, CellSearchSpace
from naonet.spaces.cell_space import NUM_CELL_INPUTS


# ----------------------------------------------------------------------- layers
def conv_parameters(c_in: int, c_out: int, kernel_size: int, groups: int = 1) -> int:
    """A bias-free convolution."""
    return (c_in // groups) * c_out * kernel_size * kernel_size


def batch_norm_parameters(channels: int) -> int:
    """An affine BatchNorm: a weight and a bias per channel."""
    return 2 * channels


def linear_parameters(c_in: int, c_out: int) -> int:
    """A linear layer with bias."""
    return c_in * c_out + c_out


def factorized_reduce_parameters(c_in: int, c_out: int) -> int:
    """Two 1x1 convolutions to ``c_out / 2`` channels each, then BN."""
    return 2 * conv_parameters(c_in, c_out // 2, 1) + batch_norm_parameters(c_out)


def relu_conv_bn_parameters(c_in: int, c_out: int) -> int:
    """ReLU, 1x1 convolution, BN."""
    return conv_parameters(c_in, c_out, 1) + batch_norm_parameters(c_out)


# ----------------------------------------------------------------------- operations
def _depthwise_pointwise_bn(channels: int, kernel_size: int) -> int:
    return (conv_parameters(channels, channels, kernel_size, groups=channels)
            + conv_parameters(channels, channels, 1) + batch_norm_parameters(channels))


def _sep_conv(kernel_size: int) -> Callable[[int, int], int]:
    return lambda channels, stride: 2 * _depthwise_pointwise_bn(channels, kernel_size)


def _dil_sep_conv(kernel_size: int) -> Callable[[int, int], int]:
    return lambda channels, stride: _depthwise_pointwise_bn(channels, kernel_size)


def _identity(channels: int, stride: int) -> int:
    # With stride 2 the identity is a FactorizedReduce (operations.identity).
    return 0 if stride == 1 else factorized_reduce_parameters(channels, channels)


def _parameter_free(channels: int, stride: int) -> int:
    return 0


# Parameters of ``models.operations.OPERATIONS[name](channels, stride)``.
OPERATION_PARAMETERS: dict[str, Callable[[int, int], int]] = {
    "zero": _parameter_free,
    "identity": _identity,
    "sep_conv_3x3": _sep_conv(3),
    "sep_conv_5x5": _sep_conv(5),
    "sep_conv_7x7": _sep_conv(7),
    "dil_sep_conv_3x3": _dil_sep_conv(3),
    "dil_sep_conv_5x5": _dil_sep_conv(5),
    "dil_sep_conv_7x7": _dil_sep_conv(7),
    "avg_pool_3x3": _parameter_free,
    "max_pool_3x3": _parameter_free,
}


def operation_parameters(name: str, channels: int, stride: int) -> int:
    """Parameters of one discrete operation at ``channels`` channels and ``stride``."""
    try:
        formula = OPERATION_PARAMETERS[name]
    except KeyError:
        raise UserError(f"no parameter formula for operation {name!r}; add one to "
                        "naonet.supernet.counting.OPERATION_PARAMETERS") from None
    return formula(channels, stride)


# ----------------------------------------------------------------------- stems and heads
def _cifar_stem_parameters(channels: int) -> int:
    stem_channels = STEM_MULTIPLIER * channels
    return conv_parameters(3, stem_channels, 3) + batch_norm_parameters(stem_channels)


def _imagenet_stem_parameters(channels: int) -> int:
    half = channels // 2
    stem0 = (conv_parameters(3, half, 3) + batch_norm_parameters(half)
             + conv_parameters(half, channels, 3) + batch_norm_parameters(channels))
    stem1 = conv_parameters(channels, channels, 3) + batch_norm_parameters(channels)
    return stem0 + stem1


# Parameters of ``SKELETONS[name].stems(channels)``.
STEM_PARAMETERS: dict[str, Callable[[int], int]] = {
    "cifar": _cifar_stem_parameters,
    "imagenet": _imagenet_stem_parameters,
}


def auxiliary_head_parameters(c_in: int, num_classes: int) -> int:
    """Conv1x1 -> 128, BN, Conv2x2 -> 768, BN, Linear (networks.AuxiliaryHead)."""
    hidden, wide = AUX_HIDDEN_CHANNELS
    return (relu_conv_bn_parameters(c_in, hidden)
            + conv_parameters(hidden, wide, AUX_SECOND_KERNEL) + batch_norm_parameters(wide)
            + linear_parameters(wide, num_classes))


# ----------------------------------------------------------------------- cells
def calibration_parameters(shape0: StateShape, shape1: StateShape, channels: int) -> int:
    """Bringing both cell inputs to ``channels`` channels (cells.CalibrateInputs)."""
    if shape0.scale != shape1.scale:
        total = factorized_reduce_parameters(shape0.channels, channels)
    elif shape0.channels != channels:
        total = relu_conv_bn_parameters(shape0.channels, channels)
    else:
        total = 0
    if shape1.channels != channels:
        total += relu_conv_bn_parameters(shape1.channels, channels)
    return total


def cell_body_parameters(space: CellSearchSpace, cell: Cell, channels: int,
                         reduction: bool) -> int:
    """The node operations and the reducers of full-size loose ends (no calibration)."""
    stride = 2 if reduction else 1
    total = 0
    for node in cell.nodes:
        for state, op in zip(node.inputs, node.ops):
            branch_stride = stride if state < NUM_CELL_INPUTS else 1
            total += operation_parameters(space.op_names[op], channels, branch_stride)
    if reduction:
        reduced = sum(1 for state in cell.loose_ends() if state < NUM_CELL_INPUTS)
        total += reduced * factorized_reduce_parameters(channels, channels)
    return total


# ----------------------------------------------------------------------- networks
def count_network_parameters(architecture: Architecture, config: NetworkConfig,
                             include_aux: bool = False) -> int:
    """Trainable parameters of ``build_network(architecture, config)``, from formulas.

    Like ``models.count_parameters`` the auxiliary head is left out unless
    ``include_aux`` (it only exists when ``config.aux_head``). Balanced sampling uses
    ``include_aux=False``, as the released code does.
    """
    try:
        stem_formula = STEM_PARAMETERS[config.skeleton]
    except KeyError:
        raise UserError(f"no parameter formula for the stems of skeleton {config.skeleton!r}; "
                        "add one to naonet.supernet.counting.STEM_PARAMETERS") from None
    space = architecture.space
    total = stem_formula(config.channels)
    shapes = SKELETONS[config.skeleton].stem_shapes(config.channels)
    bodies: dict[tuple[bool, int], int] = {}  # normal cells repeat: count each width once
    loose_ends = {False: len(architecture.normal.loose_ends()),
                  True: len(architecture.reduction.loose_ends())}
    num_cells, reduction_indices = cell_layout(config.layers)
    channels = config.channels
    for index in range(num_cells):
        reduction = index in reduction_indices
        channels = channels * 2 if reduction else channels
        if (reduction, channels) not in bodies:
            cell = architecture.reduction if reduction else architecture.normal
            bodies[reduction, channels] = cell_body_parameters(space, cell, channels, reduction)
        total += calibration_parameters(shapes[0], shapes[1], channels)
        total += bodies[reduction, channels]
        out_shape = StateShape(channels * loose_ends[reduction],
                               shapes[1].scale * (2 if reduction else 1))
        if include_aux and config.aux_head and index == reduction_indices[-1]:
            total += auxiliary_head_parameters(out_shape.channels, config.num_classes)
        shapes = (shapes[1], out_shape)
    return total + linear_parameters(shapes[1].channels, config.num_classes)
