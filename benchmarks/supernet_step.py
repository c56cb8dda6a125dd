"""(c) Supernet training step with a sampled architecture: images/s.

    python benchmarks/supernet_step.py           # search supernet (C 20, N 3), batch 64
    python benchmarks/supernet_step.py --full    # the same supernet, more steps per run

The search's own size is already small. Every step trains one architecture drawn from
a pool of 100 random ones; both variants draw the same sequence.
"""

from __future__ import annotations

import dataclasses
import random

import torch
from harness import Figure, main
from torch import nn
from workloads import Timer, label, settings, sgd, synthetic_batches, textbook_step

from naonet import runtime
from naonet.supernet import Supernet, SupernetConfig, sample_architectures
from naonet.training import Precision, train_one_epoch

SIZES = {"small": dict(channels=20, layers=3, batch=64, steps=2, rounds=3),
         "full": dict(channels=20, layers=3, batch=64, steps=30, rounds=3)}


class Sampled(nn.Module):
    """``forward(images)`` trains the next architecture of ``order``."""

    def __init__(self, supernet: Supernet):
        super().__init__()
        self.supernet = supernet
        self.order: list = []

    def set_training_progress(self, fraction: float) -> None:
        self.supernet.set_training_progress(fraction)

    def forward(self, images: torch.Tensor):
        return self.supernet(images, self.order.pop(0))


class SupernetStep:
    def __init__(self, variant: str, size: dict, device: torch.device):
        self.variant, self.size, self.device = variant, size, device
        self.paths = settings(variant, device)
        # The supernet runs a new architecture every step: it is never compiled.
        self.paths = dataclasses.replace(self.paths, compile=False)
        self.label = label(variant, self.paths, "textbook step with loss.item()"
                           if variant == "baseline" else "naonet.training.train_one_epoch")
        torch.manual_seed(0)
        config = SupernetConfig(channels=size["channels"], layers=size["layers"])
        self.supernet = runtime.to_memory_format(Supernet("small", config).to(device),
                                                 self.paths.channels_last)
        self.model = Sampled(self.supernet)
        self.optimizer = sgd(self.supernet)
        self.precision = Precision.from_name(self.paths.amp, device)
        self.pool = sample_architectures("small", 100, random.Random(0))
        self.batches = synthetic_batches(size["steps"], size["batch"], device,
                                         self.paths.channels_last)
        self.runs = 0

    def _steps(self, batches) -> None:
        draw = random.Random(self.runs)  # the same architectures in both variants
        order = [draw.choice(self.pool) for _ in batches]
        self.runs += 1
        if self.variant == "baseline":
            self.supernet.train()
            for (images, labels), architecture in zip(batches, order):
                textbook_step(self.supernet, self.optimizer, images, labels, architecture)
        else:
            self.model.order = order
            train_one_epoch(self.model, batches, self.optimizer, nn.CrossEntropyLoss(),
                            aux_weight=0.0, grad_clip=5.0, precision=self.precision,
                            scaler=self.precision.grad_scaler(), first_step=0,
                            total_steps=1000)

    def warmup(self) -> None:
        self._steps(self.batches[:2])

    def run(self) -> dict:
        with Timer(self.device) as timer:
            self._steps(self.batches)
        return {"supernet step": (self.size["steps"] * self.size["batch"], timer.seconds)}


FIGURE = Figure("c", "Supernet training step, sampled architecture", "images/s", SIZES,
                SupernetStep, "supernet_step")

if __name__ == "__main__":
    main(FIGURE)
