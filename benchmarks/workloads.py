"""Pieces the figures share: data, networks, the two settings, the baseline's loops.

The baseline is what users of the released code get: eager float32 in the default
(NCHW) memory layout, the system allocator, a torchvision DataLoader with PIL
transforms, and the textbook training step that reads the loss back every step
(``loss.item()``). cuDNN autotuning is on in both variants on CUDA (the released code
turns it on). naonet's default is :class:`naonet.runtime.FastPaths` resolved for the
device, run through the library's own engine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from naonet import runtime
from naonet.data import InMemorySplit
from naonet.runtime import FastPaths
from naonet.training.checkpoint import atomic_save

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = Path("data") / "cifar10" / "cifar10-jpg.tar.gz"  # inside a shared folder
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


# --------------------------------------------------------------------------- settings
def settings(variant: str, device: torch.device) -> FastPaths:
    """The baseline's settings, or naonet's defaults on ``device`` (applied to this
    process: allocator and backend switches)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # both: the released code sets it too
    if variant == "baseline":
        return FastPaths(channels_last=False, amp="none", compile=False,
                         host_allocator="system")
    paths = FastPaths.resolve(device)
    runtime.apply(paths, device)
    return paths


def label(variant: str, paths: FastPaths, extra: str = "") -> str:
    if variant == "baseline":
        text = "eager fp32, NCHW, system allocator"
    else:
        text = paths.describe()
    return f"{text}; {extra}" if extra else text


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Wall-clock seconds of a block, after the device has finished its work."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self.start


# --------------------------------------------------------------------------- data
def synthetic_batches(count: int, batch: int, device: torch.device, channels_last: bool,
                      seed: int = 0, classes: int = 10) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` batches of normalised-looking images and labels on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        images = torch.randn(batch, 3, 32, 32, generator=generator).to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, classes, (batch,), generator=generator).to(device)
        batches.append((images, labels))
    return batches


def find_archive() -> Path | None:
    """The shared CIFAR-10 archive, found as benchmarks/shared_data.sh finds it: in
    $NAONET_SHARED, shared/ inside the checkout (a device machine's copy) or ../shared."""
    folders = [Path(os.environ["NAONET_SHARED"])] if os.environ.get("NAONET_SHARED") else []
    folders += [REPO / "shared", REPO.parent / "shared"]
    return next((folder / ARCHIVE for folder in folders if (folder / ARCHIVE).exists()), None)


def cifar_train_split(count: int) -> tuple[InMemorySplit, str]:
    """The first ``count`` images of a fixed shuffle of the CIFAR-10 training set, and
    where they came from. Decoded JPEGs are cached as one tensor file; without the
    archive the images are random (the same cost for every pipeline)."""
    archive = find_archive()
    if archive is None:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8,
                               generator=generator)
        labels = torch.randint(0, 10, (count,), generator=generator)
        return InMemorySplit(images, labels, [str(i) for i in range(10)]), "random images"
    split = _decoded_training_set(archive)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:count]
    return split.subset(order.sort().values), f"CIFAR-10 ({archive.name})"


def _decoded_training_set(archive: Path) -> InMemorySplit:
    from naonet.data.sources import cache_dir, extract_archive, load_image_folder

    cached = cache_dir() / "benchmarks" / f"{archive.name.split('.')[0]}-train-uint8.pt"
    if cached.exists():
        data = torch.load(cached, weights_only=True)
        return InMemorySplit(data["images"], data["labels"], list(data["classes"]))
    split = load_image_folder(extract_archive(archive) / "train")
    atomic_save({"images": split.images, "labels": split.labels, "classes": split.classes},
                cached)
    return split


class PILDataset(torch.utils.data.Dataset):
    """The released code's CIFAR dataset: uint8 HWC arrays, a PIL image per item,
    torchvision transforms."""

    def __init__(self, split: InMemorySplit, transform):
        self.images = split.images.permute(0, 2, 3, 1).numpy()  # [N, H, W, 3]
        self.labels = split.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(np.ascontiguousarray(self.images[index]))), \
            self.labels[index]


def pil_transform(train: bool, cutout: int):
    """The released CIFAR transforms (naonet's copy of them)."""
    from naonet.data import DataConfig, get_dataset_spec
    from naonet.data.registry import small_image_transform

    return small_image_transform(train, DataConfig(cutout=cutout), get_dataset_spec("cifar10"))


# --------------------------------------------------------------------------- networks
def naonet_v2(channels: int, layers: int, device: torch.device, channels_last: bool,
              aux_head: bool = True) -> nn.Module:
    """NAONet-V2 with the CIFAR recipe's regularisation, seeded."""
    from naonet import NetworkConfig, build_network, named_architecture

    torch.manual_seed(0)
    network = build_network(named_architecture("naonet-v2"), NetworkConfig(
        skeleton="cifar", channels=channels, layers=layers, aux_head=aux_head,
        keep_prob=0.6, drop_path_keep_prob=0.8)).to(device)
    return runtime.to_memory_format(network, channels_last)


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=5e-4)


# --------------------------------------------------------------------------- baseline loops
def textbook_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                  labels: torch.Tensor, *args, aux_weight: float = 0.4,
                  grad_clip: float = 5.0) -> tuple[float, int]:
    """Forward, loss (+ aux), backward, clip, update; loss and hits read back each step."""
    logits, aux_logits = model(images, *args)
    loss = nn.functional.cross_entropy(logits, labels)
    if aux_logits is not None:
        loss = loss + aux_weight * nn.functional.cross_entropy(aux_logits, labels)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item(), (logits.argmax(1) == labels).sum().item()


def textbook_controller_forward(controller, tokens: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The controller's forward as the released code computes it, on naonet's parameters:
    embeddings into each LSTM, the attention's projections applied to the queries and to
    the concatenated context. Returns (predicted [N], log-probabilities [N, L, V])."""
    encoder, decoder = controller.encoder, controller.decoder
    count, length = tokens.shape
    steps = encoder.token_embedding(tokens).reshape(count, length // encoder.tokens_per_step,
                                                    -1)
    step_outputs = nn.functional.normalize(encoder.lstm(steps)[0], p=2, dim=-1)
    embedding = nn.functional.normalize(step_outputs.mean(dim=1), p=2, dim=-1)
    inputs = decoder.token_embedding(controller.teacher_forcing_input(tokens))
    queries, _ = decoder.lstm(inputs, decoder.initial_state(embedding))
    attention = decoder.attention
    scores = torch.bmm(attention.query_projection(queries), step_outputs.transpose(1, 2))
    context = torch.bmm(torch.softmax(scores, dim=-1), step_outputs)
    attended = torch.tanh(attention.output_projection(torch.cat((context, queries), dim=-1)))
    return (controller.predictor(embedding),
            nn.functional.log_softmax(decoder.output(attended), dim=-1))
