"""Parameter and multiply-add counts of discrete NAONets from formulas, without building
a network.

Balanced sampling (NAO-V2) weighs every architecture of a pool by the parameter count
of its discrete network, and a search under a budget reports every architecture's
multiply-adds; building 1000 networks for that takes minutes, the formulas here take
milliseconds. Every formula gives a :class:`Cost`, both numbers of one layer at the
resolution it runs at:

* ``count_network_parameters(architecture, config, include_aux)`` equals
  ``count_parameters(build_network(architecture, config), include_aux)``;
* ``count_network_multiply_adds(architecture, config, image_size)`` equals
  ``models.complexity.count_multiply_adds`` of the built network (convolutions and
  linear layers of one eval-mode forward pass of one image);

exactly; the tests check both for both spaces, both skeletons and several image sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from naonet.errors import UserError
from naonet.models.cells import StateShape
from naonet.models.complexity import halved
from naonet.models.networks import (
    AUX_HIDDEN_CHANNELS,
    AUX_SECOND_KERNEL,
    SKELETONS,
    STEM_MULTIPLIER,
    NetworkConfig,
    cell_layout,
)
from naonet.spaces import Architecture, Cell, CellSearchSpace
from naonet.spaces.cell_space import is_reduced, read_stride


@dataclass(frozen=True)
class Cost:
    """Trainable parameters and multiply-adds (of one image) of a part of a network."""

    parameters: int = 0
    macs: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.parameters + other.parameters, self.macs + other.macs)

    def times(self, count: int) -> Cost:
        return Cost(self.parameters * count, self.macs * count)


# ----------------------------------------------------------------------- layers
def conv_cost(c_in: int, c_out: int, kernel_size: int, pixels: int, groups: int = 1) -> Cost:
    """A bias-free convolution with ``pixels`` output pixels."""
    weights = (c_in // groups) * c_out * kernel_size * kernel_size
    return Cost(weights, weights * pixels)


def batch_norm_cost(channels: int) -> Cost:
    """An affine BatchNorm: a weight and a bias per channel, no multiply-adds counted."""
    return Cost(2 * channels, 0)


def linear_cost(c_in: int, c_out: int) -> Cost:
    """A linear layer with bias."""
    return Cost(c_in * c_out + c_out, c_in * c_out)


def factorized_reduce_cost(c_in: int, c_out: int, pixels: int) -> Cost:
    """Two 1x1 stride-2 convolutions to ``c_out / 2`` channels each (``pixels`` output
    pixels), then BN."""
    return conv_cost(c_in, c_out // 2, 1, pixels).times(2) + batch_norm_cost(c_out)


def relu_conv_bn_cost(c_in: int, c_out: int, pixels: int) -> Cost:
    """ReLU, 1x1 convolution, BN."""
    return conv_cost(c_in, c_out, 1, pixels) + batch_norm_cost(c_out)


# ----------------------------------------------------------------------- operations
# Each formula: (channels, stride, output pixels) -> Cost of
# ``models.operations.OPERATIONS[name](channels, stride)``.
def _depthwise_pointwise_bn(channels: int, kernel_size: int, pixels: int) -> Cost:
    return (conv_cost(channels, channels, kernel_size, pixels, groups=channels)
            + conv_cost(channels, channels, 1, pixels) + batch_norm_cost(channels))


def _sep_conv(kernel_size: int) -> Callable[[int, int, int], Cost]:
    # The first depthwise carries the stride: both halves run at the output resolution.
    return lambda channels, stride, pixels: _depthwise_pointwise_bn(
        channels, kernel_size, pixels).times(2)


def _dil_sep_conv(kernel_size: int) -> Callable[[int, int, int], Cost]:
    return lambda channels, stride, pixels: _depthwise_pointwise_bn(channels, kernel_size,
                                                                    pixels)


def _identity(channels: int, stride: int, pixels: int) -> Cost:
    # With stride 2 the identity is a FactorizedReduce (operations.identity).
    return Cost() if stride == 1 else factorized_reduce_cost(channels, channels, pixels)


def _free(channels: int, stride: int, pixels: int) -> Cost:
    return Cost()


OPERATION_COSTS: dict[str, Callable[[int, int, int], Cost]] = {
    "zero": _free,
    "identity": _identity,
    "sep_conv_3x3": _sep_conv(3),
    "sep_conv_5x5": _sep_conv(5),
    "sep_conv_7x7": _sep_conv(7),
    "dil_sep_conv_3x3": _dil_sep_conv(3),
    "dil_sep_conv_5x5": _dil_sep_conv(5),
    "dil_sep_conv_7x7": _dil_sep_conv(7),
    "avg_pool_3x3": _free,
    "max_pool_3x3": _free,
}


def operation_cost(name: str, channels: int, stride: int, pixels: int = 1) -> Cost:
    """Cost of one discrete operation at ``channels``, ``stride`` and output pixels."""
    try:
        formula = OPERATION_COSTS[name]
    except KeyError:
        raise UserError(f"no cost formula for operation {name!r}; add one to "
                        "naonet.supernet.counting.OPERATION_COSTS") from None
    return formula(channels, stride, pixels)


# ----------------------------------------------------------------------- stems and heads
def _cifar_stem_cost(channels: int, image_size: int) -> Cost:
    stem_channels = STEM_MULTIPLIER * channels
    return conv_cost(3, stem_channels, 3, image_size ** 2) + batch_norm_cost(stem_channels)


def _imagenet_stem_cost(channels: int, image_size: int) -> Cost:
    half = channels // 2
    stem0 = (conv_cost(3, half, 3, halved(image_size) ** 2) + batch_norm_cost(half)
             + conv_cost(half, channels, 3, halved(image_size, 2) ** 2)
             + batch_norm_cost(channels))
    stem1 = conv_cost(channels, channels, 3, halved(image_size, 3) ** 2) \
        + batch_norm_cost(channels)
    return stem0 + stem1


# Cost of ``SKELETONS[name].stems(channels)`` for images of ``image_size`` pixels a side.
STEM_COSTS: dict[str, Callable[[int, int], Cost]] = {
    "cifar": _cifar_stem_cost,
    "imagenet": _imagenet_stem_cost,
}


def auxiliary_head_parameters(c_in: int, num_classes: int) -> int:
    """Conv1x1 -> 128, BN, Conv2x2 -> 768, BN, Linear (networks.AuxiliaryHead); it runs
    in training only, so it adds no multiply-adds to an evaluation."""
    hidden, wide = AUX_HIDDEN_CHANNELS
    return (relu_conv_bn_cost(c_in, hidden, 1)
            + conv_cost(hidden, wide, AUX_SECOND_KERNEL, 1) + batch_norm_cost(wide)
            + linear_cost(wide, num_classes)).parameters


# ----------------------------------------------------------------------- cells
class Resolution:
    """Pixels of a state at each scale (1: the image; 2: half its side; ...)."""

    def __init__(self, image_size: int):
        self.image_size = image_size

    def pixels(self, scale: int) -> int:
        return halved(self.image_size, scale.bit_length() - 1) ** 2


def calibration_cost(shape0: StateShape, shape1: StateShape, channels: int,
                     resolution: Resolution) -> Cost:
    """Bringing both cell inputs to ``channels`` channels at the resolution of the second
    (cells.CalibrateInputs)."""
    pixels = resolution.pixels(shape1.scale)
    if shape0.scale != shape1.scale:
        total = factorized_reduce_cost(shape0.channels, channels, pixels)
    elif shape0.channels != channels:
        total = relu_conv_bn_cost(shape0.channels, channels, pixels)
    else:
        total = Cost()
    if shape1.channels != channels:
        total += relu_conv_bn_cost(shape1.channels, channels, pixels)
    return total


def cell_body_cost(space: CellSearchSpace, cell: Cell, channels: int, reduction: bool,
                   pixels: int) -> Cost:
    """The node operations and the reducers of full-size loose ends (no calibration);
    every one of them outputs at the cell's resolution, ``pixels``."""
    total = Cost()
    for node in cell.nodes:
        for state, op in zip(node.inputs, node.ops):
            total += operation_cost(space.op_names[op], channels,
                                    read_stride(state, reduction), pixels)
    reduced = sum(1 for state in cell.loose_ends() if is_reduced(state, reduction))
    total += factorized_reduce_cost(channels, channels, pixels).times(reduced)
    return total


# ----------------------------------------------------------------------- networks
def network_cost(architecture: Architecture, config: NetworkConfig, image_size: int = 32,
                 include_aux: bool = False) -> Cost:
    """Parameters and multiply-adds of ``build_network(architecture, config)`` for one
    image of ``image_size`` pixels a side (see the module docstring)."""
    try:
        stem_formula = STEM_COSTS[config.skeleton]
    except KeyError:
        raise UserError(f"no cost formula for the stems of skeleton {config.skeleton!r}; "
                        "add one to naonet.supernet.counting.STEM_COSTS") from None
    space = architecture.space
    resolution = Resolution(image_size)
    total = stem_formula(config.channels, image_size)
    shapes = SKELETONS[config.skeleton].stem_shapes(config.channels)
    bodies: dict[tuple[bool, int], Cost] = {}  # normal cells repeat: count each width once
    loose_ends = {False: len(architecture.normal.loose_ends()),
                  True: len(architecture.reduction.loose_ends())}
    num_cells, reduction_indices = cell_layout(config.layers)
    channels = config.channels
    for index in range(num_cells):
        reduction = index in reduction_indices
        channels = channels * 2 if reduction else channels
        out_scale = shapes[1].scale * (2 if reduction else 1)
        if (reduction, channels) not in bodies:
            cell = architecture.reduction if reduction else architecture.normal
            bodies[reduction, channels] = cell_body_cost(space, cell, channels, reduction,
                                                         resolution.pixels(out_scale))
        total += calibration_cost(shapes[0], shapes[1], channels, resolution)
        total += bodies[reduction, channels]
        out_shape = StateShape(channels * loose_ends[reduction], out_scale)
        if include_aux and config.aux_head and index == reduction_indices[-1]:
            total += Cost(auxiliary_head_parameters(out_shape.channels, config.num_classes))
        shapes = (shapes[1], out_shape)
    return total + linear_cost(shapes[1].channels, config.num_classes)


def count_network_parameters(architecture: Architecture, config: NetworkConfig,
                             include_aux: bool = False) -> int:
    """Trainable parameters of ``build_network(architecture, config)``, from formulas.

    Like ``models.count_parameters`` the auxiliary head is left out unless
    ``include_aux`` (it only exists when ``config.aux_head``). Balanced sampling uses
    ``include_aux=False``, as the released code does.
    """
    return network_cost(architecture, config, include_aux=include_aux).parameters


def count_network_multiply_adds(architecture: Architecture, config: NetworkConfig,
                                image_size: int = 32) -> int:
    """Multiply-adds of one eval-mode forward pass of ``build_network(architecture,
    config)`` on one image of ``image_size`` pixels a side, from formulas."""
    return network_cost(architecture, config, image_size).macs
