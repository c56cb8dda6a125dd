"""Scoring architectures with the supernet: validation accuracy with batch-statistics BN.

The supernet's BatchNorm running statistics mix every architecture trained so far, so
they describe none of them: scoring normalises with each batch's own statistics and
leaves the running statistics untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from naonet.spaces import Architecture

Batch = tuple[torch.Tensor, torch.Tensor]  # (images [batch, 3, H, W], labels [batch])


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode, except that BatchNorm normalises with the batch's statistics.

    Dropout and drop path are off; no running statistic or batch counter changes. On
    exit every module's ``training`` flag and every BatchNorm's ``track_running_stats``
    is exactly what it was on entry.
    """
    training = {module: module.training for module in model.modules()}
    norms = [module for module in model.modules() if isinstance(module, _BatchNorm)]
    tracking = {norm: norm.track_running_stats for norm in norms}
    try:
        model.eval()
        for norm in norms:
            # Training mode with tracking off: batch statistics, buffers neither read nor
            # written (the documented semantics of torch's BatchNorm).
            norm.training = True
            norm.track_running_stats = False
        yield model
    finally:
        for module, flag in training.items():
            module.training = flag
        for norm, flag in tracking.items():
            norm.track_running_stats = flag


def _on_device_of(model: nn.Module, batches: Sequence[Batch]) -> list[Batch]:
    """The batches on the model's device (no copy when they already are)."""
    device = next(model.parameters()).device
    return [(images.to(device), labels.to(device)) for images, labels in batches]


def _accuracy(model: nn.Module, architecture: Architecture, batches: Sequence[Batch]) -> float:
    correct = torch.zeros((), dtype=torch.long, device=batches[0][0].device)
    total = 0
    for images, labels in batches:
        logits, _ = model(images, architecture)  # [batch, classes]
        correct += (logits.argmax(dim=1) == labels).sum()
        total += labels.numel()
    return correct.item() / total  # one device sync per architecture


def score_architecture(supernet: nn.Module, architecture: Architecture,
                       batches: Sequence[Batch]) -> float:
    """Top-1 accuracy (a fraction) of one architecture on ``batches``."""
    return score_architectures(supernet, [architecture], batches)[0]


def score_architectures(supernet: nn.Module, architectures: Sequence[Architecture],
                        batches: Sequence[Batch]) -> list[float]:
    """Top-1 accuracy (a fraction) of each architecture on the same validation batches.

    BatchNorm uses batch statistics (:func:`batch_statistics`), no gradients are kept,
    and the supernet's state is unchanged afterwards.
    """
    if not batches:
        raise ValueError("score_architectures needs at least one (images, labels) batch")
    batches = _on_device_of(supernet, batches)
    with torch.no_grad(), batch_statistics(supernet):
        return [_accuracy(supernet, architecture, batches) for architecture in architectures]
