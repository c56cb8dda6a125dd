"""Engines of the supernet experiment: architecture samplers, one training epoch with
one sampled architecture per batch, and scoring architectures on fixed batches."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from itertools import accumulate

import torch
import torch.nn.functional as F

from naonet.nb201.network import NB201NetworkConfig, ParameterCounter
from naonet.nb201.space import NB201Architecture, NB201Space
from naonet.nb201.supernet import NB201Supernet


class UniformSampler:
    """Every architecture of the space with equal probability."""

    name = "uniform"

    def __init__(self, space: NB201Space, config: NB201NetworkConfig | None = None):
        self.space = space  # the network config does not matter to uniform sampling

    def __call__(self, rng: random.Random) -> NB201Architecture:
        return self.space.sample(rng)


class BalancedSampler:
    """NAO-V2's balanced sampling: probability proportional to the parameter count of
    the architecture's discrete network, so large architectures, which need more
    training, get more of it."""

    name = "balanced"

    def __init__(self, space: NB201Space, config: NB201NetworkConfig | None = None,
                 pool: Sequence[NB201Architecture] | None = None):
        counter = ParameterCounter(space, config)
        self.pool = list(pool) if pool is not None else list(space.all_architectures())
        self.cumulative = list(accumulate(counter(arch) for arch in self.pool))

    def __call__(self, rng: random.Random) -> NB201Architecture:
        return rng.choices(self.pool, cum_weights=self.cumulative)[0]


# SAMPLERS[name](space, network_config) -> callable(rng) -> architecture
SAMPLERS = {"uniform": UniformSampler, "balanced": BalancedSampler}


def train_supernet_epoch(supernet: NB201Supernet, batches: Iterable, optimizer,
                         sampler, rng: random.Random, grad_clip: float) -> float:
    """One epoch, one freshly sampled architecture per batch; returns the mean loss."""
    supernet.train()
    total, count = 0.0, 0
    for images, labels in batches:
        architecture = sampler(rng)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(supernet(images, architecture), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(supernet.parameters(), grad_clip)
        optimizer.step()
        total += loss.item() * len(labels)
        count += len(labels)
    return total / max(count, 1)


@torch.no_grad()
def score_architectures(supernet: NB201Supernet, architectures: Sequence[NB201Architecture],
                        batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """Accuracy (%) of each architecture on the same batches.

    BatchNorm normalises with each batch's own statistics (the supernet has no running
    statistics), so the order of architectures does not matter.
    """
    supernet.eval()
    scores = []
    for architecture in architectures:
        correct = total = 0
        for images, labels in batches:
            predictions = supernet(images, architecture).argmax(dim=1)  # [B]
            correct += int((predictions == labels).sum())
            total += len(labels)
        scores.append(100.0 * correct / total)
    return scores
