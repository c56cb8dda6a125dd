"""Re-ranking the best architectures: train each from scratch briefly, validate it.

The released search trains each of its top 5 for 10 epochs (N 3, C 20, dropout 0.4,
drop path 0.8, auxiliary head 0.4, the supernet's optimizer settings) on the search's
training split and ranks them by accuracy on the validation split. Here the epochs
run through the foundation's engine, with the scheduler stepped after each epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from naonet.data import DataBundle
from naonet.distributed import DistributedContext, wrap_data_parallel
from naonet.runtime import to_memory_format
from naonet.search.config import SearchConfig
from naonet.search.supernet_training import build_optimizer, start_schedule
from naonet.seeding import seeded
from naonet.training import Precision, evaluate


@dataclass
class RerankJob:
    """One architecture being trained from scratch: its network and optimisation state."""

    network: nn.Module  # the space's discrete network
    model: nn.Module  # the network, or DDP around it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    def modules(self) -> dict:
        """What the search checkpoint saves of this job."""
        return {"rerank_network": self.network, "rerank_optimizer": self.optimizer,
                "rerank_scheduler": self.scheduler}

    def load(self, checkpoint: dict) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(checkpoint[name])


def rerank_network_config(architecture, config: SearchConfig, data: DataBundle):
    """The re-rank network's config in the architecture's space."""
    return architecture.space.network_config(
        config.rerank_channels, config.rerank_layers, data.num_classes, data.skeleton,
        aux_head=config.rerank_aux_weight > 0, keep_prob=config.rerank_keep_prob,
        drop_path_keep_prob=config.rerank_drop_path_keep_prob,
        drop_path_exempts_pass_through=config.drop_path_exempts_pass_through)


def start_rerank_job(architecture, config: SearchConfig, data: DataBundle,
                     context: DistributedContext, init_seed: int) -> RerankJob:
    """A freshly initialised network (same weights on every rank) and its optimizer."""
    network_config = rerank_network_config(architecture, config, data)
    network = seeded(init_seed, lambda: architecture.space.build_network(
        architecture, network_config)).to(context.device)
    network = to_memory_format(network, config.channels_last)
    model = wrap_data_parallel(network, context)
    optimizer = build_optimizer(network, config, context.world_size)
    scheduler = start_schedule(optimizer, config, context.world_size, config.rerank_epochs)
    return RerankJob(network, model, optimizer, scheduler)


def validation_accuracy(job: RerankJob, data: DataBundle, precision: Precision) -> float:
    """Top-1 accuracy (a fraction) on the whole validation split, summed over ranks."""
    return evaluate(job.model, data.valid, precision).top1
