"""Training the supernet with the foundation's epoch engine, one sampled architecture a step.

:class:`SampledSupernet` makes the supernet look like any one-input network to
:func:`naonet.training.train_one_epoch` (and to DistributedDataParallel): each forward
pass in training draws the step's architecture from a :class:`PoolSampler`. Every rank
seeds its sampler alike, so all ranks train the same architecture at every step.
"""

from __future__ import annotations

import torch
from torch import nn

from naonet.distributed import DistributedContext, all_reduce_sum, wrap_data_parallel
from naonet.runtime import FastPaths
from naonet.runtime import apply as apply_fast_paths
from naonet.search.config import SearchConfig
from naonet.supernet import PoolSampler
from naonet.training.optimizer import learning_rates, sgd


class SampledSupernet(nn.Module):
    """``forward(images)`` runs the architecture the sampler draws for this step."""

    def __init__(self, supernet: nn.Module):
        super().__init__()
        self.supernet = supernet
        self.sampler: PoolSampler | None = None
        self.checksum = 0  # of the architectures drawn so far, to compare across ranks

    def set_training_progress(self, fraction: float) -> None:
        self.supernet.set_training_progress(fraction)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.sampler is None:
            raise RuntimeError("SampledSupernet needs a sampler before training")
        architecture = self.sampler.sample()
        self.checksum = (self.checksum * 31 + _fingerprint(architecture)) % CHECKSUM_MODULUS
        return self.supernet(images, architecture)


CHECKSUM_MODULUS = 2**31 - 1  # a float64 all-reduce of world_size such values stays exact


def _fingerprint(architecture) -> int:
    """An integer that tells architectures apart (Python's str hash differs per process)."""
    value = 0
    for integer in architecture.space.to_integers(architecture):
        value = (value * 17 + integer + 1) % CHECKSUM_MODULUS
    return value


def check_same_architectures(sampled: SampledSupernet, context: DistributedContext) -> None:
    """Fail loudly if the ranks trained different architectures (a seeding bug would
    otherwise average unrelated gradients silently)."""
    if not context.is_distributed:
        return
    mine = torch.tensor([float(sampled.checksum)], dtype=torch.float64, device=context.device)
    total = all_reduce_sum(mine.clone())
    if total.item() != mine.item() * context.world_size:
        raise RuntimeError("the processes trained different architectures; the sampler "
                           "must be seeded alike on every rank")


def wrap_for_training(supernet: nn.Module, context: DistributedContext) -> tuple[
        SampledSupernet, nn.Module]:
    """The sampling wrapper, and the module to train (the wrapper, or DDP around it).

    Only the sampled path gets gradients, so DDP has to look for unused parameters.
    """
    wrapper = SampledSupernet(supernet)
    return wrapper, wrap_data_parallel(wrapper, context, find_unused_parameters=True)


def search_learning_rates(config: SearchConfig, world_size: int) -> tuple[float, float]:
    """(maximum, minimum) learning rate of the supernet and the re-rank."""
    return learning_rates(config.lr, config.lr_min, world_size,
                          config.scale_lr_with_world_size)


def build_optimizer(model: nn.Module, config: SearchConfig, world_size: int
                    ) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay (the released child optimizer)."""
    return sgd(model, search_learning_rates(config, world_size)[0], config.momentum,
               config.weight_decay)


def start_schedule(optimizer: torch.optim.Optimizer, config: SearchConfig, world_size: int,
                   epochs: int) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """A cosine schedule from the maximum learning rate, whatever the optimizer's lr now.

    A new ``CosineAnnealingLR`` on a used optimizer would start from the lr the last one
    left (from PyTorch 1.4 on, the released per-round restart silently continued from
    the last round's low rate; before 1.4 it restarted): reset it first.
    """
    lr_max, lr_min = search_learning_rates(config, world_size)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = lr_max
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=lr_min)


def schedule_epochs(config: SearchConfig) -> int:
    """Epochs of one cosine cycle: a round's, or the whole search's without restarts."""
    if config.restart_schedule:
        return config.supernet_epochs
    return config.supernet_epochs * config.rounds


def train_supernet_epoch(model: nn.Module, sampled: SampledSupernet, data, optimizer,
                         config: SearchConfig, round_index: int, epoch: int,
                         context: DistributedContext, precision, progress=None):
    """One supernet epoch as the search trains it (the ranking experiment too). Its data
    order, architecture draws and drop-path masks are fixed by (seed, round, epoch), so
    a resumed epoch repeats exactly; every rank draws the same architectures."""
    from naonet.seeding import derive_seed
    from naonet.training import train_one_epoch

    data.train.set_epoch(round_index * config.supernet_epochs + epoch)
    sampled.sampler.rng.manual_seed(derive_seed(config.seed, "sampler", round_index, epoch))
    torch.manual_seed(derive_seed(config.seed, "supernet-epoch", round_index, epoch,
                                  context.rank))
    steps = len(data.train)
    stats = train_one_epoch(
        model, data.train, optimizer, nn.CrossEntropyLoss(), aux_weight=0.0,
        grad_clip=config.grad_clip, precision=precision, scaler=None,
        first_step=epoch * steps, total_steps=config.supernet_epochs * steps,
        progress=progress, log_every=config.log_every,
        clear_gradients_to_none=not config.update_off_path)
    check_same_architectures(sampled, context)
    return stats


def search_fast_paths(config: SearchConfig, device: torch.device) -> FastPaths:
    """The fast paths of the search's supernet, scoring and re-rank on ``device``
    (resolved as training resolves them, never compiled: every step runs another
    architecture), applied to this process."""
    paths = FastPaths.resolve(device, channels_last=config.channels_last, amp=config.amp,
                              compile="off", host_allocator=config.host_allocator)
    apply_fast_paths(paths, device)
    return paths
