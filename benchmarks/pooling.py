"""(g) 3x3 average pooling (padding 1, real pixels counted), forward and backward, at the
shapes of the NB201 supernet's three stages (C 16, batch 64, 16 px images) and of
scoring (batch 250): elements/s.

    python benchmarks/pooling.py           # 30 passes per shape
    python benchmarks/pooling.py --full    # 200 passes per shape

Baseline: ``F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)``, PyTorch's pooling
kernel. naonet: ``naonet.models.operations.average_pool_3x3`` (on the CPU a depthwise
convolution with a kernel of ones, divided by the real pixels under each window). Both
in NHWC, the search's layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from harness import Figure, main
from workloads import Timer

from naonet.models.operations import average_pool_3x3

SHAPES = ((64, 16, 16, 16), (64, 32, 8, 8), (64, 64, 4, 4), (250, 16, 16, 16))
SIZES = {"small": dict(passes=30, rounds=5), "full": dict(passes=200, rounds=5)}


class Pooling:
    def __init__(self, variant: str, size: dict, device: torch.device):
        self.size, self.device = size, device
        generator = torch.Generator().manual_seed(0)
        self.inputs = [torch.randn(*shape, generator=generator).to(device).contiguous(
            memory_format=torch.channels_last).requires_grad_(True) for shape in SHAPES]
        # Upstream gradients as a network passes them back: dense, in the same layout.
        self.gradients = [torch.randn(*shape, generator=generator).to(device).contiguous(
            memory_format=torch.channels_last) for shape in SHAPES]
        if variant == "baseline":
            self.pool = lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
            self.label = "F.avg_pool2d, NHWC"
        else:
            self.pool = average_pool_3x3
            self.label = "naonet.models.operations.average_pool_3x3, NHWC"

    def _passes(self, count: int) -> None:
        for _ in range(count):
            for x, gradient in zip(self.inputs, self.gradients):
                self.pool(x).backward(gradient)

    def warmup(self) -> None:
        self._passes(2)

    def run(self) -> dict:
        with Timer(self.device) as timer:
            self._passes(self.size["passes"])
        elements = sum(x.numel() for x in self.inputs) * self.size["passes"]
        return {"forward + backward": (elements, timer.seconds)}


FIGURE = Figure("g", "3x3 average pooling", "elements/s", SIZES, Pooling, "pooling")

if __name__ == "__main__":
    main(FIGURE)
