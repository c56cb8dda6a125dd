"""(b) NAONet-V2 CIFAR inference: images/s of evaluation-mode forward passes.

    python benchmarks/inference.py           # C 20, N 3, batch 128 (CPU-sized)
    python benchmarks/inference.py --full    # NAONet-V2-36: C 36, N 6, batch 256

Synthetic images already on the device; top-1 hits are counted in both variants.
"""

from __future__ import annotations

import torch
from harness import Figure, main
from workloads import Timer, label, naonet_v2, settings, synthetic_batches

from naonet.runtime import maybe_compile
from naonet.training import Precision, evaluate

SIZES = {"small": dict(channels=20, layers=3, batch=128, batches=2, rounds=3),
         "full": dict(channels=36, layers=6, batch=256, batches=20, rounds=3)}


class Inference:
    def __init__(self, variant: str, size: dict, device: torch.device):
        self.variant, self.size, self.device = variant, size, device
        self.paths = settings(variant, device)
        self.label = label(variant, self.paths, "no_grad loop with .item() per batch"
                           if variant == "baseline" else "naonet.training.evaluate")
        self.network = naonet_v2(size["channels"], size["layers"], device,
                                 self.paths.channels_last).eval()
        self.model = maybe_compile(self.network, self.paths.compile)
        self.precision = Precision.from_name(self.paths.amp, device)
        self.batches = synthetic_batches(size["batches"], size["batch"], device,
                                         self.paths.channels_last)

    def _evaluate(self, batches) -> None:
        if self.variant == "baseline":
            correct = 0
            with torch.no_grad():
                for images, labels in batches:
                    correct += (self.network(images)[0].argmax(1) == labels).sum().item()
        else:
            evaluate(self.model, batches, self.precision)

    def warmup(self) -> None:
        self._evaluate(self.batches[:2])

    def run(self) -> dict:
        with Timer(self.device) as timer:
            self._evaluate(self.batches)
        return {"inference": (self.size["batches"] * self.size["batch"], timer.seconds)}


FIGURE = Figure("b", "NAONet-V2 CIFAR inference", "images/s", SIZES, Inference, "inference")

if __name__ == "__main__":
    main(FIGURE)
