"""(a) NAONet-V2 CIFAR training step: images/s of forward, backward and update.

    python benchmarks/train_step.py           # C 20, N 3, batch 64 (CPU-sized)
    python benchmarks/train_step.py --full    # NAONet-V2-36: C 36, N 6, batch 128

Synthetic images already on the device: this figure is the step alone (data loading
is figure (f)). Aux head 0.4, drop path and dropout as in the CIFAR recipe.
"""

from __future__ import annotations

import torch
from harness import Figure, main
from torch import nn
from workloads import Timer, label, naonet_v2, settings, sgd, synthetic_batches, textbook_step

from naonet.runtime import maybe_compile
from naonet.training import Precision, train_one_epoch

SIZES = {"small": dict(channels=20, layers=3, batch=64, steps=2, rounds=3),
         "full": dict(channels=36, layers=6, batch=128, steps=20, rounds=3)}


class TrainStep:
    def __init__(self, variant: str, size: dict, device: torch.device):
        self.variant, self.size, self.device = variant, size, device
        self.paths = settings(variant, device)
        self.label = label(variant, self.paths, "textbook step with loss.item()"
                           if variant == "baseline" else "naonet.training.train_one_epoch")
        self.network = naonet_v2(size["channels"], size["layers"], device,
                                 self.paths.channels_last)
        self.model = maybe_compile(self.network, self.paths.compile)
        self.optimizer = sgd(self.network)
        self.precision = Precision.from_name(self.paths.amp, device)
        self.batches = synthetic_batches(size["steps"], size["batch"], device,
                                         self.paths.channels_last)
        self.step = 0

    def _steps(self, batches) -> None:
        total = 1000 * len(batches)
        if self.variant == "baseline":
            self.network.train()
            for images, labels in batches:
                self.step += 1
                self.network.set_training_progress(self.step / total)
                textbook_step(self.network, self.optimizer, images, labels)
        else:
            train_one_epoch(self.model, batches, self.optimizer, nn.CrossEntropyLoss(),
                            aux_weight=0.4, grad_clip=5.0, precision=self.precision,
                            scaler=self.precision.grad_scaler(), first_step=self.step,
                            total_steps=total)
            self.step += len(batches)

    def warmup(self) -> None:
        self._steps(self.batches[:2])  # compiles, autotunes, grows the allocator's heap

    def run(self) -> dict:
        with Timer(self.device) as timer:
            self._steps(self.batches)
        return {"training step": (self.size["steps"] * self.size["batch"], timer.seconds)}


FIGURE = Figure("a", "NAONet-V2 CIFAR training step", "images/s", SIZES, TrainStep,
                "train_step")

if __name__ == "__main__":
    main(FIGURE)
