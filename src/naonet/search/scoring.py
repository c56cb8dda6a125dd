"""Scoring a pool of architectures with the supernet on held-out validation images.

The validation images are drawn once per search (:func:`build_scoring_data`) and kept
on the device. ``fixed`` scoring (the default) evaluates every architecture on the
same batches, so scores differ only because the architectures do. ``per-architecture``
scoring is the released behaviour: each architecture gets its own random batch, drawn
from the same held-out images by a generator seeded per (round, architecture), so it is
reproducible and does not depend on how many processes share the work.

Architectures are sharded across processes; the scores are summed back to every rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from naonet.distributed import DistributedContext, all_reduce_sum, broadcast_object
from naonet.runtime import sum_dtype
from naonet.stopping import raise_if_stopped
from naonet.supernet import score_architectures
from naonet.supernet.scoring import Batch

SCORE_CHUNK = 8  # architectures per call to the scorer (progress-bar granularity)


@dataclass
class ScoringData:
    """Validation images and labels held on the device, and how to batch them."""

    images: torch.Tensor  # [M, 3, H, W], normalised
    labels: torch.Tensor  # [M]
    batch_size: int
    num_batches: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def images_per_architecture(self) -> int:
        """The images each architecture is scored on (the split may hold fewer than the
        batches ask for)."""
        return min(len(self), self.batch_size * self.num_batches)

    def fixed_batches(self) -> list[Batch]:
        """The same ``num_batches`` batches for every architecture (views, no copy)."""
        return [(self.images[start:start + self.batch_size],
                 self.labels[start:start + self.batch_size])
                for start in range(0, len(self), self.batch_size)][:self.num_batches]

    def random_batches(self, generator: torch.Generator) -> list[Batch]:
        """``num_batches`` batches drawn without replacement (the released behaviour)."""
        wanted = self.images_per_architecture
        order = torch.randperm(len(self), generator=generator)[:wanted].to(self.labels.device)
        return [(self.images[order[start:start + self.batch_size]],
                 self.labels[order[start:start + self.batch_size]])
                for start in range(0, wanted, self.batch_size)]


def sample_once(batches: Iterable[Batch], count: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` samples (all with ``count`` 0) drawn uniformly without replacement from one
    pass over ``batches``, in random order.

    Every sample gets a random key and the ``count`` smallest keys are kept as the
    batches stream by (priority sampling), so memory stays at ``count`` samples
    whatever the size of the validation split.
    """
    keys = images = labels = None
    for batch_images, batch_labels in batches:
        batch_keys = torch.rand(batch_labels.shape[0], generator=generator)
        if keys is None:
            keys, images, labels = batch_keys, batch_images, batch_labels
        else:
            keys = torch.cat([keys, batch_keys])
            images = torch.cat([images, batch_images])
            labels = torch.cat([labels, batch_labels])
        if count and keys.shape[0] > count:
            keys, images, labels = _smallest(keys, images, labels, count)
    if keys is None:
        raise ValueError("the validation split yielded no batches")
    return _smallest(keys, images, labels, keys.shape[0])[1:]


def _smallest(keys: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, count: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``count`` samples of smallest key, ordered by key."""
    order = keys.topk(count, largest=False, sorted=True).indices
    device_order = order.to(labels.device)
    return keys[order], images[device_order], labels[device_order]


def build_scoring_data(valid_batches: Iterable[Batch], batch_size: int, num_batches: int,
                       mode: str, seed: int, context: DistributedContext) -> ScoringData:
    """Draw the scoring images once; every rank gets rank 0's draw.

    ``fixed`` keeps ``batch_size * num_batches`` images; ``per-architecture`` keeps the
    whole validation split to draw a new batch from for every architecture. The draw is
    from the whole split (``unsharded()`` where the batches are a rank's share of it), so
    it is the same at any number of processes.
    """
    count = batch_size * num_batches if mode == "fixed" else 0
    drawn = None
    if context.is_main:
        generator = torch.Generator().manual_seed(seed)
        whole = getattr(valid_batches, "unsharded", None)
        images, labels = sample_once(whole() if whole else valid_batches, count, generator)
        drawn = (images.cpu(), labels.cpu()) if context.is_distributed else (images, labels)
    images, labels = broadcast_object(drawn)
    return ScoringData(images.to(context.device), labels.to(context.device), batch_size,
                       num_batches)


def score_pool(supernet: nn.Module, architectures: Sequence, data: ScoringData,
               mode: str, seeds: Sequence[int], context: DistributedContext,
               progress=None, metric: str = "accuracy") -> list[float]:
    """The score of every architecture (accuracy as a fraction, or minus the mean loss:
    see :func:`naonet.supernet.score_architectures`); this rank scores every
    ``world_size``-th one and the results are summed over ranks.

    ``seeds[i]`` seeds architecture ``i``'s batch in ``per-architecture`` mode.
    """
    scores = torch.zeros(len(architectures), dtype=sum_dtype(context.device),
                         device=context.device)
    mine = list(range(context.rank, len(architectures), context.world_size))
    fixed = data.fixed_batches() if mode == "fixed" else None
    for start in range(0, len(mine), SCORE_CHUNK):
        raise_if_stopped()  # a Ctrl-C its handler's exception failed to deliver
        chunk = mine[start:start + SCORE_CHUNK]
        if fixed is not None:
            values = score_architectures(supernet, [architectures[i] for i in chunk], fixed,
                                         metric)
        else:
            values = [score_architectures(supernet, [architectures[i]], data.random_batches(
                torch.Generator().manual_seed(seeds[i])), metric)[0] for i in chunk]
        for index, value in zip(chunk, values):
            scores[index] = value
        if progress is not None:
            progress.update(len(chunk))
    return all_reduce_sum(scores).tolist()


def supernet_evaluator(supernet: nn.Module, data: ScoringData, budget: int | None,
                       context: DistributedContext, metric: str = "accuracy"):
    """A trained supernet as a strategy's evaluator: each architecture queried is scored
    on the fixed scoring batches (the one-shot evaluator of random search with weight
    sharing, or of regularized evolution)."""
    from naonet.evaluators import BudgetedEvaluator

    def measure(architecture) -> float:
        return score_pool(supernet, [architecture], data, "fixed", [0], context,
                          metric=metric)[0]

    return BudgetedEvaluator(measure, budget)
