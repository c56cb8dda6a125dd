"""Re-ranking the best architectures: train each from scratch briefly, validate it.

The released search trains each of its top 5 for 10 epochs (N 3, C 20, dropout 0.4,
drop path 0.8, auxiliary head 0.4, the supernet's optimizer settings) on the search's
training split and ranks them by accuracy on the validation split. Here the epochs
run through the foundation's engine, with the scheduler stepped after each epoch.

Beyond the released re-rank: each architecture may train ``rerank_repeats`` times from
other seeds (its accuracy is their mean), the candidates may share their random streams
(``rerank_common_seeds``), and the trainings may run in ``rerank_processes`` CPU
processes at once (:func:`train_in_processes`; the same results as one process).
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from naonet.data import DataBundle, build_data
from naonet.distributed import DistributedContext, wrap_data_parallel
from naonet.runtime import to_memory_format
from naonet.search.config import SearchConfig
from naonet.search.supernet_training import build_optimizer, search_fast_paths, start_schedule
from naonet.seeding import derive_seed, seeded
from naonet.spaces import get_space
from naonet.training import Precision, evaluate, train_one_epoch

# the search checkpoint's keys of a re-rank training under way
JOB_MODULES = ("rerank_network", "rerank_optimizer", "rerank_scheduler")


@dataclass
class RerankJob:
    """One architecture being trained from scratch: its network and optimisation state."""

    network: nn.Module  # the space's discrete network
    model: nn.Module  # the network, or DDP around it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    def modules(self) -> dict:
        """What the search checkpoint saves of this job."""
        return dict(zip(JOB_MODULES, (self.network, self.optimizer, self.scheduler)))

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


def rerank_stream(config: SearchConfig, index: int, repeat: int) -> int:
    """Which random streams (initialisation, batches, dropout) repeat ``repeat`` of the
    ``index``-th re-ranked architecture draws from: with ``rerank_common_seeds`` every
    architecture's repeat r draws stream r, so the candidates compare on equal terms;
    else each (architecture, repeat) a stream of its own."""
    if config.rerank_common_seeds:
        return repeat
    return index * config.rerank_repeats + repeat


def start_stream_job(architecture, config: SearchConfig, data: DataBundle,
                     context: DistributedContext, stream: int) -> RerankJob:
    """The job of one stream: the network initialised from the stream's seed."""
    return start_rerank_job(architecture, config, data, context,
                            derive_seed(config.seed, "rerank-init", stream))


def rerank_train_epoch(job: RerankJob, data: DataBundle, config: SearchConfig, stream: int,
                       epoch: int, rank: int, precision: Precision, progress=None) -> None:
    """Epoch ``epoch`` of a re-rank training, its batches and dropout drawn from
    ``stream`` (so a resumed or a parallel training draws what one process drew)."""
    data.train.set_epoch(stream * config.rerank_epochs + epoch)
    torch.manual_seed(derive_seed(config.seed, "rerank-epoch", stream, epoch, rank))
    steps = len(data.train)
    train_one_epoch(job.model, data.train, job.optimizer, nn.CrossEntropyLoss(),
                    aux_weight=config.rerank_aux_weight, grad_clip=config.grad_clip,
                    precision=precision, scaler=None, first_step=epoch * steps,
                    # Deliberately the supernet's step count, as the released re-rank
                    # networks get args.steps: drop path ramps up over supernet_epochs
                    # epochs, so a shorter re-rank never reaches its final rate.
                    total_steps=config.supernet_epochs * steps, progress=progress,
                    # a candidate that diverges scores at chance and loses the re-rank,
                    # as released; it does not end the search
                    log_every=config.log_every, stop_on_divergence=False)
    job.scheduler.step()


# ------------------------------------------------------------------ parallel trainings
_WORKER: dict = {}  # per worker process: its config, data, context and precision


def train_in_processes(config: SearchConfig, jobs: list[tuple[str, int]],
                       processes: int) -> Iterator[float]:
    """Train ``jobs`` (architecture string, stream) from scratch in ``processes`` CPU
    processes, each with its share of this process's threads; yields each validation
    accuracy in the order of ``jobs`` as it becomes known."""
    threads = max(1, torch.get_num_threads() // processes)
    context = torch.multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_start_worker, initargs=(config, threads)) as pool:
        yield from pool.imap(_train_job, jobs)


def _start_worker(config: SearchConfig, threads: int) -> None:
    """A worker's start: its threads, the search's data split (built as the search
    builds it), and an end when the search process ends (Linux)."""
    try:  # a killed search must not leave its workers training
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    paths = search_fast_paths(config, device)
    _WORKER.update(
        config=config, precision=Precision.from_name(config.amp, device),
        context=DistributedContext(rank=0, world_size=1, local_rank=0, device=device),
        data=build_data(config.data_config(), device, seed=config.seed,
                        channels_last=paths.channels_last))


def _train_job(job: tuple[str, int]) -> float:
    text, stream = job
    config, data, context = _WORKER["config"], _WORKER["data"], _WORKER["context"]
    precision = _WORKER["precision"]
    architecture = get_space(config.space).parse(text)
    training = start_stream_job(architecture, config, data, context, stream)
    for epoch in range(config.rerank_epochs):
        rerank_train_epoch(training, data, config, stream, epoch, context.rank, precision)
    return validation_accuracy(training, data, precision)
