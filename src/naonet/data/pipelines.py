"""Batch iterators that the training engine consumes.

Both kinds yield ``(images, labels)`` already on the target device, know their length in
batches, and take ``set_epoch(epoch)`` so the shuffling of every epoch is fixed by the
seed (a resumed run sees the same batches as an uninterrupted one).

* :class:`DeviceBatches` keeps a whole small-image data set on the device as uint8 and
  does crop, flip, normalisation and cutout in batches there (the fast path).
* :class:`LoaderBatches` wraps a ``torch.utils.data.DataLoader`` with per-image
  torchvision transforms (large images, AutoAugment, the reference baseline).
"""

from __future__ import annotations

import copy
import itertools
import weakref
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler

from naonet.data.augment import crop_flip, cutout_at, draw_crop_flip, draw_cutout
from naonet.data.sources import InMemorySplit
from naonet.errors import UserError
from naonet.runtime import check_worker_count
from naonet.seeding import derive_seed, random_streams_kept, seed_cpu_streams


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of a run's data order in ``epoch`` (and, through :func:`augment_seed`, of
    the device pipeline's augmentation); naonet.options.SEED_LIMIT keeps it within
    torch's 64 bits."""
    return seed * 100_003 + epoch


# The ranks whose augmentation seeds follow epoch_seed (the ones every documented run
# drew with); another rank's would repeat a lower rank's draws of a later epoch.
LINEAR_AUGMENT_RANKS = 16


def augment_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of ``rank``'s augmentation draws in ``epoch`` (the device pipeline's).

    Ranks 0-15 keep ``epoch_seed * 16 + rank + 7``, the seeds every documented figure was
    measured with; from rank 16 on that gives rank r the draws of rank r - 16 in the next
    epoch, so those ranks draw from a stream of their own (``derive_seed``)."""
    if rank < LINEAR_AUGMENT_RANKS:
        return epoch_seed(seed, epoch) * LINEAR_AUGMENT_RANKS + rank + 7
    return derive_seed(seed, "augment-rank", epoch, rank)


def trained_images(images: int, batch_size: int) -> int:
    """How many of a training shard's ``images`` an epoch trains on: all, but a last
    batch that would hold one image alone (BatchNorm cannot normalise one value per
    channel in training, which a NAONet's auxiliary head meets on its 1 x 1 maps; the
    image left out is another, randomly, each epoch). A UserError when that leaves none."""
    if images == 1 or batch_size > 1 and images % batch_size == 1:
        images -= 1
    if images == 0:
        raise UserError("the training images leave no batch of two images (BatchNorm in "
                        "training needs two): use more training images (a lower "
                        "--valid-size, a larger --train-subset) or fewer processes")
    return images


@dataclass(frozen=True)
class BatchAugment:
    """Batched augmentation settings of the device pipeline (CIFAR recipe)."""

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0


class DeviceBatches:
    """Iterate an in-memory split on ``device`` in shuffled (train) or fixed order."""

    def __init__(self, split: InMemorySplit, batch_size: int, device: torch.device,
                 mean: tuple[float, ...], std: tuple[float, ...], train: bool,
                 augment: BatchAugment | None = None, seed: int = 0, rank: int = 0,
                 world_size: int = 1, channels_last: bool = False):
        self.images = split.images.to(device)  # uint8 [N, 3, H, W], kept on the device
        self.labels = split.labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.train = train
        self.augment = augment or BatchAugment()
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.channels_last = channels_last
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255.0
        self.epoch = 0
        if train:  # too few images to train on is said now, not at the first epoch
            _ = self.trained

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def unsharded(self) -> DeviceBatches:
        """The same batches over the whole split, every rank's share, in one process's
        order (what a run draws from that must not depend on the number of processes)."""
        whole = copy.copy(self)
        whole.rank, whole.world_size = 0, 1
        return whole

    @property
    def trained(self) -> int:
        """The training images of this rank's shard an epoch trains on."""
        return trained_images(self.labels.shape[0] // self.world_size, self.batch_size)

    def _indices(self) -> torch.Tensor:
        """This rank's sample order for the current epoch.

        Training shards are equal in size (the uneven tail is dropped) so every rank
        takes the same number of steps, less a last batch of one image
        (:func:`trained_images`); evaluation shards are strided and cover every sample
        exactly once.
        """
        total = self.labels.shape[0]
        if not self.train:
            return torch.arange(self.rank, total, self.world_size)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(total, generator=generator)
        per_rank = total // self.world_size
        return order[self.rank * per_rank: self.rank * per_rank + self.trained]

    def __len__(self) -> int:
        total = self.labels.shape[0]
        per_rank = self.trained if self.train else -(-total // self.world_size)
        return -(-per_rank // self.batch_size)

    def total_images(self) -> int:
        """The images of the split, every rank's share."""
        return int(self.labels.shape[0])

    def _epoch_draws(self, total: int) -> dict[str, torch.Tensor]:
        """Every random number of the epoch's augmentation, drawn batch by batch on the CPU
        (the same numbers whatever the device) and moved to the device in one copy each,
        so no step waits on a host-to-device transfer: crop offsets [2, N], flip draws
        [N], cutout centres [2, N] (each only when used)."""
        if not self.train:
            return {}
        generator = torch.Generator().manual_seed(augment_seed(self.seed, self.epoch,
                                                               self.rank))
        _, _, height, width = self.images.shape
        parts: dict[str, list[torch.Tensor]] = {"offsets": [], "flips": [], "centres": []}
        for start in range(0, total, self.batch_size):
            batch = min(self.batch_size, total - start)
            offsets, flips = draw_crop_flip(batch, self.augment.crop_padding, generator,
                                            self.augment.flip)
            parts["offsets"].append(offsets)
            parts["flips"].append(flips)
            if self.augment.cutout > 0:
                parts["centres"].append(draw_cutout(batch, height, width, generator))
        dims = {"offsets": 1, "flips": 0, "centres": 1}
        return {name: torch.cat(values, dim=dims[name]).to(self.device)
                for name, values in parts.items() if values and values[0] is not None}

    def __iter__(self):
        order = self._indices()
        draws = self._epoch_draws(order.shape[0])
        order = order.to(self.device)
        for start in range(0, order.shape[0], self.batch_size):
            window = slice(start, start + self.batch_size)
            index = order[window]
            images = self.images[index]
            if self.train:
                offsets, flips = draws.get("offsets"), draws.get("flips")
                images = crop_flip(images, self.augment.crop_padding,
                                   None if offsets is None else offsets[:, window],
                                   None if flips is None else flips[window])
            images = (images.float() - self.mean) / self.std
            if "centres" in draws:
                images = cutout_at(images, self.augment.cutout, draws["centres"][:, window])
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, self.labels[index]


class LoaderBatches:
    """A DataLoader over a map-style dataset, moving batches to ``device``."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, train: bool,
                 workers: int = 2, seed: int = 0, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False):
        check_worker_count(workers)  # a library caller's too
        self.device = device
        self.channels_last = channels_last
        self.sampler = None
        self.init_arguments = dict(dataset=dataset, batch_size=batch_size, device=device,
                                   train=train, workers=workers, seed=seed,
                                   channels_last=channels_last)  # for unsharded()
        # The sample order has a generator of its own: the DataLoader draws its workers'
        # base seed from its generator whenever it starts them (every epoch, or once with
        # persistent workers), which would shift a shared generator's permutation.
        self.order = torch.Generator().manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        if world_size > 1 and train:
            self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                              shuffle=True, seed=seed, drop_last=True)
        elif world_size > 1:
            # Strided shards: every sample evaluated once, none padded in.
            self.sampler = list(range(rank, len(dataset), world_size))
        elif train:
            self.sampler = RandomSampler(dataset, generator=self.order)
        self.seed, self.epoch = seed, 0
        self.generator = generator
        sampler = self.sampler
        if train:  # augmentation draws fixed by (seed, epoch, sample), see _SeededSamples
            dataset = _SeededSamples(dataset, seed)
            count = trained_images(len(self.sampler), batch_size)
            sampler = _EpochIndices(self.sampler, weakref.ref(self), count)  # no cycle:
            # the workers of a dropped loader end with it, not at the next full collection
        self.loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=False, sampler=sampler,
            num_workers=workers, generator=generator, pin_memory=device.type == "cuda",
            drop_last=False, persistent_workers=workers > 0, worker_init_fn=_seed_worker)

    def total_images(self) -> int:
        """The images of the data set, every rank's share."""
        return len(self.loader.dataset)

    def unsharded(self) -> LoaderBatches:
        """Batches over the whole data set, every rank's share, in one process's order:
        for an evaluation split (fixed order), what one process iterates (see
        :meth:`DeviceBatches.unsharded`); a training split's copy starts at epoch 0."""
        return LoaderBatches(**self.init_arguments)

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        self.order.manual_seed(epoch_seed(self.seed, epoch))
        self.generator.manual_seed(epoch_seed(self.seed, epoch))
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, labels in _worker_errors_as_raised(self.loader):
            images = images.to(self.device, non_blocking=True)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, labels.to(self.device, non_blocking=True)


class _EpochIndices(Sampler):
    """The first ``count`` of ``sampler``'s indices, each paired with the epoch its owner
    (a weak reference to a :class:`LoaderBatches`) is in when they are drawn."""

    def __init__(self, sampler, owner, count: int):
        self.sampler, self.owner, self.count = sampler, owner, count

    def __iter__(self):
        epoch = self.owner().epoch
        return ((epoch, index) for index in itertools.islice(self.sampler, self.count))

    def __len__(self) -> int:
        return self.count


class _SeededSamples(Dataset):
    """``dataset[index]`` with every global random stream seeded by (seed, epoch, index)
    first: a sample's augmentation is the same whichever worker makes it, however long
    that worker has lived and however many there are. Persistent workers would otherwise
    carry their streams across epochs, and a run resumed in a later epoch (new workers)
    would augment differently from the run it continues."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list:
        """A batch of samples (the DataLoader asks for a batch at once where it can)."""
        from torch.utils.data import get_worker_info

        if get_worker_info() is not None:  # a worker's streams serve this alone
            return [self._seeded(key) for key in keys]
        with random_streams_kept():  # without workers: the training's streams stay its own
            return [self._seeded(key) for key in keys]

    def _seeded(self, key: tuple[int, int]):
        epoch, index = key
        seed_cpu_streams(derive_seed(self.seed, "augment", epoch, index))
        return self.dataset[index]


def _worker_errors_as_raised(loader):
    """``loader``'s batches; a UserError raised in a worker process (an unreadable image)
    comes out as it was raised, not as PyTorch's re-raise that puts the worker's whole
    traceback into its message."""

    try:
        yield from _started_with_stops_held(loader)
    except UserError as error:
        text = str(error)
        if not text.startswith("Caught UserError in DataLoader worker"):
            raise
        last = [line for line in text.splitlines() if line.strip()][-1]
        raise UserError(last.split("UserError: ", 1)[-1]) from None


WORKER_START_SIGNALS = ("SIGINT", "SIGTERM")  # a process group's stops


def _started_with_stops_held(loader):
    """``iter(loader)`` with a process group's stops (SIGINT, SIGTERM) held back while it
    starts workers: one that came between a worker's fork and its :func:`_seed_worker`
    would run the command's handler in the worker's start-up (a traceback, and the
    loader's "exited unexpectedly"). Held back, it waits in the worker until the worker
    has its own handling (SIGINT ignored, torch's SIGTERM handler), and in this process
    until the workers are started (then it stops the run as ever). Persistent workers
    start once: a later epoch's iter() only waits for them, and is left interruptible."""
    import signal

    starts_workers = getattr(loader, "_iterator", None) is None  # None: no workers yet
    if loader.num_workers == 0 or not starts_workers or not hasattr(signal, "pthread_sigmask"):
        return iter(loader)
    held = {getattr(signal, name) for name in WORKER_START_SIGNALS}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _seed_worker(worker_id: int) -> None:
    """Give every worker process distinct, reproducible random streams: Python's and
    NumPy's from the seed the DataLoader gave the worker's torch generator; leave a
    process group's stop to the main process (:func:`_leave_stops_to_the_main_process`)."""
    seed_cpu_streams(torch.initial_seed())
    _leave_stops_to_the_main_process()
    _quiet_when_the_main_process_leaves_a_handover()


def _leave_stops_to_the_main_process() -> None:
    """A loader worker ignores SIGINT. Ctrl-C reaches the whole process group, workers
    included; the main process stops the run and ends its workers. A worker that raised
    the command's KeyboardInterrupt (it inherits the handler) in its exit path printed a
    traceback each, and the loader then raised "worker exited unexpectedly". SIGTERM
    keeps torch's own handler, which ends a worker at once wherever it is, as the main
    process's shutdown needs; the loader's "killed by signal" when a process group's
    SIGTERM ends a worker is the command's to report as the stop (naonet.cli.main)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # held back while the worker started: now a
        # SIGINT is dropped, and a SIGTERM ends the worker by torch's handler
        signal.pthread_sigmask(signal.SIG_UNBLOCK,
                               {getattr(signal, name) for name in WORKER_START_SIGNALS})


def _quiet_when_the_main_process_leaves_a_handover() -> None:
    """A worker prints nothing when the main process leaves while taking a batch from it.
    A batch's tensors pass through a handshake that a thread of the worker serves
    (``multiprocessing.resource_sharer``), with every signal blocked: when a process
    group's stop ends the main process mid-handshake, that thread can wake before the
    worker's own stop and print a ``ConnectionResetError`` traceback below the stop's
    line (2 runs in 30 under load). Such an error only says the main process is gone,
    which the main process reports; every other error is printed as ever."""
    import sys
    from multiprocessing import resource_sharer

    printing = sys.excepthook

    def excepthook(kind, error, trace):
        if not (issubclass(kind, ConnectionError | EOFError)
                and _raised_in(trace, resource_sharer.__file__)):
            printing(kind, error, trace)

    sys.excepthook = excepthook


def _raised_in(trace, filename: str) -> bool:
    """Whether a frame of traceback ``trace`` runs code of ``filename``."""
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == filename:
            return True
        trace = trace.tb_next
    return False
