"""Scoring architectures with the supernet: validation accuracy with batch-statistics BN.

The supernet's BatchNorm running statistics mix every architecture trained so far, so
they describe none of them: scoring normalises with each batch's own statistics and
leaves the running statistics untouched.

Fast path: the batches are moved to the supernet's device and memory format once for
all architectures, every architecture runs under ``torch.inference_mode``, and the
correct counts stay on the device until the end (one host synchronisation per call,
not one per architecture).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from naonet.errors import UserError
from naonet.runtime import sum_dtype

Batch = tuple[torch.Tensor, torch.Tensor]  # (images [batch, 3, H, W], labels [batch])


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode, except that BatchNorm normalises with the batch's statistics.

    Dropout and drop path are off; no running statistic or batch counter changes. On
    exit every module's ``training`` flag and every BatchNorm's ``track_running_stats``
    is exactly what it was on entry.
    """
    from naonet.runtime import evaluating

    norms = [module for module in model.modules() if isinstance(module, _BatchNorm)]
    tracking = {norm: norm.track_running_stats for norm in norms}
    with evaluating(model):  # every module's flag comes back as it was
        try:
            for norm in norms:
                # Training mode with tracking off: batch statistics, buffers neither read
                # nor written (the documented semantics of torch's BatchNorm).
                norm.training = True
                norm.track_running_stats = False
            yield model
        finally:
            for norm, flag in tracking.items():
                norm.track_running_stats = flag


def _on_device_of(model: nn.Module, batches: Sequence[Batch]) -> list[Batch]:
    """The batches on the model's device, in its floating dtype and in its memory format
    (NHWC when its convolutions are): no copy when they already are."""
    from naonet.runtime import input_memory_format

    first = next(model.parameters())
    memory_format = input_memory_format(model)
    return [(images.to(first.device, first.dtype if images.is_floating_point() else None)
             .contiguous(memory_format=memory_format), labels.to(first.device))
            for images, labels in batches]


# What a score can be, with what it is; higher is better for both.
SCORE_METRICS = {"accuracy": "validation accuracy (a fraction)",
                 "loss": "minus the validation cross-entropy"}


def _accumulate(model: nn.Module, architecture, batches: Sequence[Batch],
                totals: torch.Tensor) -> None:
    """Add the architecture's correct predictions and summed cross-entropy over
    ``batches`` to ``totals`` (a device tensor [2]), without reading it back."""
    for images, labels in batches:
        logits, _ = model(images, architecture)  # [batch, classes]
        totals[0] += (logits.argmax(dim=1) == labels).sum()
        totals[1] += F.cross_entropy(logits.float(), labels, reduction="sum")


def score_architectures(supernet: nn.Module, architectures: Sequence,
                        batches: Sequence[Batch], metric: str = "accuracy") -> list[float]:
    """The score of each architecture on the same validation batches: top-1 accuracy (a
    fraction) or, with ``metric="loss"``, minus the mean cross-entropy (higher is
    better). The loss still tells architectures apart when few images separate their
    accuracies (a supernet early in training).

    BatchNorm uses batch statistics (:func:`batch_statistics`), no gradients are kept,
    and the supernet's state is unchanged afterwards.
    """
    if metric not in SCORE_METRICS:
        raise UserError(f"unknown score metric {metric!r}; use one of: "
                        f"{', '.join(SCORE_METRICS)}")
    if not batches:
        raise UserError("score_architectures needs at least one (images, labels) batch; "
                        "pass a list of (images, labels) tensors")
    batches = _on_device_of(supernet, batches)
    total = sum(labels.numel() for _, labels in batches)
    device = batches[0][1].device
    totals = torch.zeros(len(architectures), 2, dtype=sum_dtype(device),
                         device=device)  # [archs, (correct, loss sum)]
    with torch.inference_mode(), batch_statistics(supernet):
        for index, architecture in enumerate(architectures):
            _accumulate(supernet, architecture, batches, totals[index])
    values = totals.tolist()  # the one host synchronisation
    if metric == "loss":
        return [-loss / total for _, loss in values]
    return [correct / total for correct, _ in values]
