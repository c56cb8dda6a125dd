"""(d) Scoring architectures with the supernet: architectures/s.

    python benchmarks/scoring.py           # 100 architectures, 1 batch of 100 images each
    python benchmarks/scoring.py --full    # 100 architectures, 1 batch of 500 (the released size)

Baseline, the released way: for every architecture a new DataLoader over the held-out
images (PIL transforms, worker processes), its first batch, an eager float32 forward
with batch-statistics BatchNorm, the accuracy read back. naonet: the scoring images are
drawn once per search and kept on the device (not timed: once per search), then
``naonet.supernet.score_architectures``. The architectures are scored in chunks,
alternating between the variants; every variant scores all of them.
"""

from __future__ import annotations

import dataclasses
import random

import torch
from harness import Figure, main
from workloads import (
    CIFAR_MEAN,
    CIFAR_STD,
    PILDataset,
    Timer,
    cifar_train_split,
    label,
    pil_transform,
    settings,
)

from naonet import runtime
from naonet.supernet import Supernet, SupernetConfig, sample_architectures
from naonet.supernet.scoring import batch_statistics, score_architectures

SIZES = {"small": dict(architectures=100, batch=100, held_out=1000, workers=2, chunk=10),
         "full": dict(architectures=100, batch=500, held_out=5000, workers=4, chunk=25)}


class Scoring:
    def __init__(self, variant: str, size: dict, device: torch.device):
        self.variant, self.size, self.device = variant, size, device
        # score_architectures runs in float32 and eagerly (a new architecture each call).
        self.paths = dataclasses.replace(settings(variant, device), amp="none", compile=False)
        split, source = cifar_train_split(size["held_out"])
        torch.manual_seed(0)
        self.supernet = runtime.to_memory_format(Supernet("small", SupernetConfig()).to(device),
                                                 self.paths.channels_last)
        self.architectures = sample_architectures("small", size["architectures"],
                                                  random.Random(0))
        self.next = 0
        if variant == "baseline":
            self.dataset = PILDataset(split, pil_transform(train=False, cutout=0))
            self.label = label(variant, self.paths, f"new DataLoader ({size['workers']} "
                               f"workers, PIL) per architecture; {source}")
        else:
            images = split.images[:size["batch"]].to(device).float()
            mean = torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1) * 255
            std = torch.tensor(CIFAR_STD, device=device).view(1, 3, 1, 1) * 255
            self.batches = [((images - mean) / std, split.labels[:size["batch"]].to(device))]
            self.label = label(variant, self.paths, "fixed batches on the device, "
                               f"naonet.supernet.score_architectures; {source}")

    def _released_score(self, architecture, generator: torch.Generator) -> float:
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.size["batch"], shuffle=True, generator=generator,
            num_workers=self.size["workers"], pin_memory=self.device.type == "cuda")
        images, labels = next(iter(loader))
        images, labels = images.to(self.device), labels.to(self.device)
        with torch.no_grad(), batch_statistics(self.supernet):
            logits, _ = self.supernet(images, architecture)
            return (logits.argmax(1) == labels).float().mean().item()

    def _score(self, architectures) -> None:
        if self.variant == "baseline":
            for architecture in architectures:
                self._released_score(architecture, torch.Generator().manual_seed(self.next))
        else:
            score_architectures(self.supernet, architectures, self.batches)

    def warmup(self) -> None:
        self._score(self.architectures[:1])

    def run(self) -> dict:
        chunk = self.architectures[self.next:self.next + self.size["chunk"]]
        self.next = (self.next + self.size["chunk"]) % len(self.architectures)
        with Timer(self.device) as timer:
            self._score(chunk)
        return {"scoring": (len(chunk), timer.seconds)}


def _rounds(size: dict) -> int:
    return -(-size["architectures"] // size["chunk"])


for _size in SIZES.values():
    _size["rounds"] = _rounds(_size)  # every architecture once per variant

FIGURE = Figure("d", "Scoring architectures with the supernet", "architectures/s", SIZES,
                Scoring, "scoring")

if __name__ == "__main__":
    main(FIGURE)
