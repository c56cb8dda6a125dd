"""Operations of the NAO cell spaces, built by name: ``OPERATIONS[name](channels, stride)``.

Every module here keeps its channel count (``C -> C``); a stride of 2 halves the
resolution. Layers never name a device: tensors they create follow their input.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from naonet.errors import UserError


class ReLUConvBN(nn.Module):
    """ReLU, k x k convolution (no bias), a norm: BatchNorm unless ``norm`` builds
    another (the NAS-Bench-201 supernet's batch-statistics BatchNorm). The NAO cells
    bring their inputs to C channels with it; NAS-Bench-201's convolutions are it."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, norm: Callable[[int], nn.Module] = nn.BatchNorm2d):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding,
                              bias=False)
        self.bn = norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convs, the second on a one-pixel shift.

    ``relu_first`` puts a ReLU in front (as when calibrating a cell input).

    A 1x1 conv of stride 2 reads every other pixel, so each path takes every other
    pixel first and then runs a 1x1 conv of stride 1: the same products and sums as
    the released stride-2 convs (same weights, same names), faster, and clear of a
    PyTorch CPU fault: the weight gradient of a channels-last 1x1 stride-2 conv with
    few input channels (4-12) corrupts memory on images of 48 px and more (torch
    2.14.1; the search crashed with a segmentation fault at --channels 8).
    """

    def __init__(self, c_in: int, c_out: int, relu_first: bool = False):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu_first = relu_first
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relu_first:
            x = F.relu(x)
        # The even grid, and the odd grid (the released one-pixel shift), zero-filled at
        # the far edge of an odd side so both grids have ceil(side / 2) pixels: together
        # they see every pixel. Only the sampled quarter is copied.
        odd = F.pad(x[:, :, 1::2, 1::2], (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        return self.bn(torch.cat([self.conv1(x[:, :, ::2, ::2]), self.conv2(odd)], dim=1))


class SepConv(nn.Module):
    """(ReLU, depthwise k x k, pointwise 1x1, BN) twice; the first depthwise carries the stride."""

    def __init__(self, channels: int, kernel_size: int, stride: int):
        super().__init__()
        padding = kernel_size // 2
        self.depthwise1 = nn.Conv2d(channels, channels, kernel_size, stride, padding,
                                    groups=channels, bias=False)
        self.pointwise1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.depthwise2 = nn.Conv2d(channels, channels, kernel_size, 1, padding,
                                    groups=channels, bias=False)
        self.pointwise2 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.pointwise1(self.depthwise1(F.relu(x))))
        return self.bn2(self.pointwise2(self.depthwise2(F.relu(x))))


class DilSepConv(nn.Module):
    """ReLU, dilated depthwise k x k (dilation 2), pointwise 1x1, BN: once."""

    def __init__(self, channels: int, kernel_size: int, stride: int, dilation: int = 2):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.depthwise1 = nn.Conv2d(channels, channels, kernel_size, stride, padding,
                                    dilation=dilation, groups=channels, bias=False)
        self.pointwise1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.pointwise1(self.depthwise1(F.relu(x))))


def average_pool_3x3(x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """3x3 average pooling with padding 1 that counts only real pixels at the border
    (``avg_pool2d(x, 3, stride, 1, count_include_pad=False)``).

    On the CPU it runs as a depthwise convolution with a kernel of ones divided by the
    number of real pixels under each window: the same sums (in another order, so equal
    to float rounding), 2.1x PyTorch's CPU average pool forward and backward in NHWC and
    about 10x forward in NCHW (benchmarks/pooling.py, docs/benchmarks.md). Other devices
    use ``avg_pool2d``.
    """
    if x.device.type != "cpu" or x.dim() != 4:
        return F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
    channels, height, width = x.shape[1:]
    ones = x.new_ones(channels, 1, 3, 3)
    sums = F.conv2d(x, ones, None, stride, 1, 1, channels)
    # Real pixels under each window: 9 inside, 6 on an edge, 4 in a corner (stride 1).
    counts = F.conv2d(x.new_ones(1, 1, height, width), ones[:1], None, stride, 1)
    return sums / counts


class AvgPool(nn.Module):
    """3x3 average pooling that ignores the zero padding in its count."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return average_pool_3x3(x, self.stride)


class MaxPool(nn.Module):
    """3x3 max pooling."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 3, self.stride, 1)


class Zero(nn.Module):
    """The 'no connection' op: zeros at the output resolution."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


def identity(channels: int, stride: int) -> nn.Module:
    """Identity; with stride 2 it becomes a FactorizedReduce (no leading ReLU)."""
    return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)


OpFactory = Callable[[int, int], nn.Module]

OPERATIONS: dict[str, OpFactory] = {
    "zero": lambda c, stride: Zero(stride),
    "identity": identity,
    "sep_conv_3x3": lambda c, stride: SepConv(c, 3, stride),
    "sep_conv_5x5": lambda c, stride: SepConv(c, 5, stride),
    "sep_conv_7x7": lambda c, stride: SepConv(c, 7, stride),
    "dil_sep_conv_3x3": lambda c, stride: DilSepConv(c, 3, stride),
    "dil_sep_conv_5x5": lambda c, stride: DilSepConv(c, 5, stride),
    "dil_sep_conv_7x7": lambda c, stride: DilSepConv(c, 7, stride),
    "avg_pool_3x3": lambda c, stride: AvgPool(stride),
    "max_pool_3x3": lambda c, stride: MaxPool(stride),
}


def build_operation(name: str, channels: int, stride: int) -> nn.Module:
    """The module for operation ``name`` at ``channels`` channels and ``stride``."""
    if name not in OPERATIONS:
        raise UserError(f"no NAO cell operation {name!r}; known: {', '.join(OPERATIONS)} "
                        "(add a builder to naonet.models.operations.OPERATIONS and a cost "
                        "formula to naonet.supernet.counting.OPERATION_COSTS)")
    return OPERATIONS[name](channels, stride)
