"""The paper's ranking experiment on NAS-Bench-201: how well does a weight-sharing
supernet, trained with uniform or balanced architecture sampling, rank architectures?

For each sampling: train a fresh supernet (same initialisation, same data order) for
``epochs`` epochs with one sampled architecture per batch, score a fixed random sample
of architectures on the same validation batches, and compare the scores with the
benchmark table (Kendall's tau and the other statistics of
:mod:`naonet.analysis.correlation`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from naonet.analysis.correlation import CorrelationReport, correlate
from naonet.errors import UserError
from naonet.nb201.network import NB201NetworkConfig
from naonet.nb201.space import NB201Architecture
from naonet.nb201.supernet import NB201Supernet
from naonet.nb201.supernet_training import SAMPLERS, score_architectures, train_supernet_epoch
from naonet.nb201.table import DEFAULT_METRIC, BenchmarkTable, metric_column


@dataclass(frozen=True)
class RankingExperimentConfig:
    """Supernet, its training (NAO-V2 search defaults) and the architectures scored."""

    epochs: int = 10
    samplings: tuple[str, ...] = ("uniform", "balanced")
    sample_size: int = 100  # architectures scored and compared with the table
    channels: int = 16
    cells_per_stage: int = 5
    affine: bool = False  # BatchNorm affine parameters in the supernet
    learning_rate: float = 0.025  # cosine schedule down to min_learning_rate
    min_learning_rate: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    score_batches: int = 0  # validation batches used to score (0: all)
    metric: str = DEFAULT_METRIC  # table column the scores are compared with
    top_k: tuple[int, ...] = (5, 10)
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [s for s in self.samplings if s not in SAMPLERS]
        if unknown or not self.samplings:
            raise UserError(f"unknown sampling {unknown[0] if unknown else ''!r}; use "
                            f"{', '.join(SAMPLERS)}")
        if self.epochs < 0 or self.sample_size < 2:
            raise UserError("the experiment needs epochs >= 0 and at least 2 architectures")
        metric_column(self.metric)

    def network_config(self, num_classes: int) -> NB201NetworkConfig:
        return NB201NetworkConfig(self.channels, self.cells_per_stage, num_classes)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SamplingResult:
    """Scores of the sampled architectures by a supernet trained with one sampling."""

    sampling: str
    scores: list[float]
    report: CorrelationReport
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    seconds: float = 0.0


@dataclass
class RankingResult:
    architectures: list[NB201Architecture]
    reference: list[float]  # the table's metric of each architecture
    samplings: list[SamplingResult]


def sample_architectures(table: BenchmarkTable, count: int, seed: int
                         ) -> list[NB201Architecture]:
    """A fixed random sample of the table's architectures."""
    if count > len(table):
        raise UserError(f"cannot score {count} architectures; the table has {len(table)}")
    return random.Random(seed).sample(list(table.architectures), count)


def run_ranking_experiment(config: RankingExperimentConfig, table: BenchmarkTable,
                           train_batches, valid_batches, num_classes: int,
                           device: torch.device,
                           log: Callable[[str], None] = lambda line: None) -> RankingResult:
    """Train one supernet per sampling and compare its scores with the table."""
    architectures = sample_architectures(table, config.sample_size, config.seed)
    column = metric_column(config.metric)
    reference = [table.value(arch, column) for arch in architectures]
    score_on = fixed_batches(valid_batches, config.score_batches, config.seed)
    results = []
    for sampling in config.samplings:
        start = time.perf_counter()
        supernet, losses = train_with_sampling(config, table, sampling, train_batches,
                                               num_classes, device, log)
        scores = score_architectures(supernet, architectures, score_on)
        report = correlate(scores, reference, config.top_k)
        results.append(SamplingResult(sampling, scores, report, losses,
                                      time.perf_counter() - start))
        log(f"{sampling}: kendall tau {report.kendall_tau:.4f} over {len(scores)} "
            f"architectures")
    return RankingResult(architectures, reference, results)


def train_with_sampling(config: RankingExperimentConfig, table: BenchmarkTable, sampling: str,
                        train_batches, num_classes: int, device: torch.device,
                        log: Callable[[str], None]) -> tuple[NB201Supernet, list[float]]:
    """A fresh supernet (initialisation fixed by the seed) trained with ``sampling``."""
    network_config = config.network_config(num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        supernet = NB201Supernet(network_config, table.space, config.affine).to(device)
    sampler = SAMPLERS[sampling](table.space, network_config)
    optimizer = torch.optim.SGD(supernet.parameters(), lr=config.learning_rate,
                                momentum=config.momentum, weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    losses = []
    for epoch in range(config.epochs):
        set_learning_rate(optimizer, cosine_rate(config, epoch))
        train_batches.set_epoch(epoch)
        losses.append(train_supernet_epoch(supernet, train_batches, optimizer, sampler, rng,
                                           config.grad_clip))
        log(f"{sampling}: epoch {epoch + 1}/{config.epochs} loss {losses[-1]:.4f}")
    return supernet, losses


def cosine_rate(config: RankingExperimentConfig, epoch: int) -> float:
    """Learning rate of ``epoch``: cosine from the initial to the minimum rate."""
    progress = epoch / max(config.epochs, 1)
    return config.min_learning_rate + 0.5 * (config.learning_rate - config.min_learning_rate) \
        * (1 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate


def fixed_batches(batches, limit: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``limit`` batches (all with 0) of shuffled validation images, held in memory so
    every architecture is scored on the same images.

    Shuffled because BatchNorm normalises with each batch's statistics: a batch of one
    class (image folders list images class by class) would have the class's own
    statistics normalised away and score every architecture near chance.
    """
    batches.set_epoch(0)
    pairs = list(batches)
    if not pairs:
        raise UserError("no validation images to score architectures on; set a "
                        "validation split size")
    size = len(pairs[0][1])
    images = torch.cat([images for images, _ in pairs])  # [N, 3, H, W]
    labels = torch.cat([labels for _, labels in pairs])  # [N]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    order = order.to(labels.device)
    held = [(images[order[start:start + size]], labels[order[start:start + size]])
            for start in range(0, len(labels), size)]
    return held[:limit] if limit else held
