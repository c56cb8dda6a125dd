"""(f) A whole CIFAR training epoch, data loading included: images/s.

    python benchmarks/epoch.py           # search-time size: C 20, N 3, 2,000 images, batch 64
    python benchmarks/epoch.py --full    # NAONet-V2-36 recipe: C 36, N 6, 50,000 images, batch 128

The CIFAR recipe's augmentation (crop 32 pad 4, flip, cutout 16) and regularisation
(aux head 0.4, drop path 0.8, dropout 0.4). Baseline: a torchvision DataLoader with
PIL transforms (worker processes, as configured) and the textbook step. naonet: the
device pipeline (the split held on the device, augmentation in batches there) and
``naonet.training.train_one_epoch``. The warm-up runs two steps (worker start,
compilation); every timed run is one whole epoch.
"""

from __future__ import annotations

import itertools

import torch
from harness import Figure, main
from torch import nn
from workloads import (
    CIFAR_MEAN,
    CIFAR_STD,
    PILDataset,
    Timer,
    cifar_train_split,
    label,
    naonet_v2,
    pil_transform,
    settings,
    sgd,
    textbook_step,
)

from naonet.data import BatchAugment, DeviceBatches
from naonet.runtime import maybe_compile
from naonet.training import Precision, train_one_epoch

SIZES = {"small": dict(channels=20, layers=3, images=2000, batch=64, workers=2, rounds=2),
         "full": dict(channels=36, layers=6, images=50000, batch=128, workers=8, rounds=2)}
CUTOUT = 16


class Epoch:
    def __init__(self, variant: str, size: dict, device: torch.device):
        self.variant, self.size, self.device = variant, size, device
        self.paths = settings(variant, device)
        split, source = cifar_train_split(size["images"])
        self.network = naonet_v2(size["channels"], size["layers"], device,
                                 self.paths.channels_last)
        self.optimizer = sgd(self.network)
        self.epoch = 0
        if variant == "baseline":
            dataset = PILDataset(split, pil_transform(train=True, cutout=CUTOUT))
            self.batches = torch.utils.data.DataLoader(
                dataset, batch_size=size["batch"], shuffle=True, num_workers=size["workers"],
                pin_memory=device.type == "cuda", persistent_workers=size["workers"] > 0)
            self.label = label(variant, self.paths, f"DataLoader ({size['workers']} workers, "
                               f"PIL transforms), textbook step; {source}")
        else:
            self.batches = DeviceBatches(split, size["batch"], device, CIFAR_MEAN, CIFAR_STD,
                                         train=True, augment=BatchAugment(cutout=CUTOUT),
                                         channels_last=self.paths.channels_last)
            self.model = maybe_compile(self.network, self.paths.compile)
            self.precision = Precision.from_name(self.paths.amp, device)
            self.label = label(variant, self.paths, "device pipeline, "
                               f"naonet.training.train_one_epoch; {source}")
        self.steps = len(self.batches)

    def _train(self, steps: int | None = None) -> int:
        """One epoch (or its first ``steps`` steps); returns the images seen."""
        total = 1000 * self.steps
        first = self.epoch * self.steps
        self.epoch += 1
        if self.variant == "baseline":
            self.network.train()
            seen = 0
            for step, (images, labels) in enumerate(itertools.islice(self.batches, steps)):
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
                self.network.set_training_progress((first + step + 1) / total)
                textbook_step(self.network, self.optimizer, images, labels)
                seen += labels.shape[0]
            return seen
        self.batches.set_epoch(self.epoch)
        batches = itertools.islice(self.batches, steps)
        stats = train_one_epoch(self.model, batches, self.optimizer, nn.CrossEntropyLoss(),
                                aux_weight=0.4, grad_clip=5.0, precision=self.precision,
                                scaler=self.precision.grad_scaler(), first_step=first,
                                total_steps=total)
        return stats.images

    def warmup(self) -> None:
        self._train(steps=2)

    def run(self) -> dict:
        with Timer(self.device) as timer:
            images = self._train()
        return {"training epoch": (images, timer.seconds)}


FIGURE = Figure("f", "CIFAR training epoch with data loading", "images/s", SIZES, Epoch,
                "epoch")

if __name__ == "__main__":
    main(FIGURE)
