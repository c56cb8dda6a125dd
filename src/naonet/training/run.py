"""The training recipe: assemble data, network, optimizer and schedule, then loop epochs.

Rerunning the same command resumes: the run folder's ``last.pt`` restores the model,
optimizer, scheduler, random states and epoch. Only rank 0 writes.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from naonet.data import DataBundle, build_data
from naonet.data.registry import (
    check_augmentation,
    pipeline_as_saved,
    reads_files_as_it_goes,
)
from naonet.data.sources import existing_data_path
from naonet.distributed import (
    DistributedContext,
    barrier,
    broadcast_buffers,
    gather_objects,
    init_distributed,
    wrap_data_parallel,
)
from naonet.errors import UserError
from naonet.files import atomic_write_text
from naonet.models import NAONet, NetworkConfig, count_parameters
from naonet.options import flag_text
from naonet.revision import code_revision
from naonet.run_folder import (
    TRAIN_CHECKPOINT,
    claim_run_folder,
    lost_checkpoint,
    write_run_config,
)
from naonet.runtime import (
    FastPaths,
    check_worker_count,
    maybe_compile,
    slow_bf16_note,
    to_memory_format,
)
from naonet.runtime import apply as apply_fast_paths
from naonet.seeding import (
    caller_random_state_kept,
    capture_rng_state,
    derive_seed,
    restore_rng_state,
    seed_everything,
)
from naonet.spaces import Architecture, resolve_architecture
from naonet.spaces.protocol import training_recipe
from naonet.stopping import raise_if_stopped
from naonet.text import counted, joined, main_process_log, print_line
from naonet.training.checkpoint import (
    START_OVER,
    atomic_save,
    check_run_classes,
    check_run_images,
    check_same_run,
    load_checkpoint,
    restoring,
)
from naonet.training.config import TrainConfig
from naonet.training.engine import (
    EpochStats,
    Precision,
    accuracy_text,
    evaluate,
    shown_top5,
    step_progress,
    train_one_epoch,
    unwrap,
)
from naonet.training.optimizer import learning_rates, sgd

CHECKPOINT_FORMAT = 1
# Options that may change between a run and its resumption without changing its result
# (not --pipeline: the two pipelines draw their augmentations differently).
RESUMABLE_CHANGES = {"workers", "log_every", "device", "eval_batch_size", "output", "data",
                     "download", "channels_last", "compile", "host_allocator"}
# Options added after run folders were first written, with the value every run made
# before them trained with: a saved config without the key resumes only with that value.
ADDED_OPTIONS = {"nesterov": False}

BEST_CHECKPOINT = "best.pt"  # the epoch of the best validation accuracy (with --valid-size)
METRICS_NAME = "metrics.jsonl"  # one line an epoch
RESULT_NAME = "result.json"  # the finished run's figures


@dataclass
class RunState:
    """What the epoch loop carries from one epoch to the next."""

    epoch: int = 0
    best_valid_top1: float = -1.0
    best_epoch: int = -1
    record: dict | None = None  # the last epoch's metrics line, kept in the checkpoint too
    processes: int | None = None  # the processes of the last epoch (None: not recorded)
    precision: str = "none"  # the autocast it trains in: --amp as resolved on its device


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory of ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu" and hasattr(os, "sysconf"):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def check_network_fits(architecture, network_config, device: torch.device,
                       what: str = "a network", copies: int = 1) -> None:
    """Refuse, before allocating anything, a network (``copies`` of it, as a few-shot
    supernet holds) whose weights, gradients and momentum (12 bytes a parameter,
    activations not even counted) exceed the device."""
    parameters = copies * architecture.space.parameter_count(architecture, network_config)
    total = device_memory(device)
    if total is not None and 12 * parameters > total:
        raise UserError(f"{what} of C {network_config.channels}, N {network_layers(network_config)}"
                        f" has {parameters:,} parameters, {12 * parameters / 2**30:,.0f} GiB "
                        f"with gradients and momentum, more than the {total / 2**30:,.0f} GiB "
                        f"of {device}; pass smaller --channels / --layers")


def network_layers(network_config) -> int:
    """Cells per stage of a NAONet or a NAS-Bench-201 network config."""
    return getattr(network_config, "layers", getattr(network_config, "cells_per_stage", 0))


def network_config_for(config: TrainConfig, data: DataBundle, space):
    """The network config of ``space`` for this data (a NAS-Bench-201 network takes no
    auxiliary head, dropout or drop path: those options leave it as it is)."""
    return space.network_config(
        config.channels, config.layers, data.num_classes, data.skeleton,
        aux_head=config.aux_head, keep_prob=config.keep_prob,
        drop_path_keep_prob=config.drop_path_keep_prob,
        drop_path_exempts_pass_through=config.drop_path_exempts_pass_through)


def options_network_config(config: TrainConfig, space):
    """The network config ``config``'s options make in ``space``, before any data is
    read (CIFAR's skeleton and 10 classes stand in for the data's: what the checks of a
    run's start read does not depend on them)."""
    return space.network_config(
        config.channels, config.layers, aux_head=config.aux_head, keep_prob=config.keep_prob,
        drop_path_keep_prob=config.drop_path_keep_prob,
        drop_path_exempts_pass_through=config.drop_path_exempts_pass_through)


def check_batch_for_aux_head(config: TrainConfig, space) -> None:
    """Refuse batches of one image for a network with an auxiliary head: its last
    BatchNorm sees 1 x 1 maps, one value per channel, which it cannot normalise."""
    if getattr(options_network_config(config, space), "aux_head", False) \
            and config.batch_size < 2:
        raise UserError("--batch-size 1 cannot train the auxiliary head (its BatchNorm needs "
                        "two images a batch); pass --batch-size 2 or more, or --no-aux-head")


def unused_options_note(config: TrainConfig, space) -> str | None:
    """A note naming the regularisation options set on for a network that has none of
    them (NAS-Bench-201's: no auxiliary head, dropout or drop path), else None."""
    if hasattr(options_network_config(config, space), "aux_head"):
        return None
    keep_probs = {"keep_prob": config.keep_prob,
                  "drop_path_keep_prob": config.drop_path_keep_prob}
    unused = ([] if not config.aux_head else ["--aux-head"]) + [
        flag_text(name, value) for name, value in keep_probs.items() if value < 1]
    if not unused:
        return None
    return (f"the {space.name} network has no auxiliary head, dropout or drop path, so "
            f"{joined(unused)} {'is' if len(unused) == 1 else 'are'} not used (--no-aux-head"
            " --keep-prob 1 --drop-path-keep-prob 1 say so; the space's own recipe: "
            f"{training_recipe(space, config.dataset, config.image_size)})")


def build_optimizer_and_schedule(
        model: nn.Module, config: TrainConfig, world_size: int,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD with momentum; cosine or exponential decay stepped after every epoch."""
    lr, lr_min = learning_rates(config.lr, config.lr_min, world_size,
                                config.scale_lr_with_world_size)
    optimizer = sgd(model, lr, config.momentum, config.weight_decay, config.nesterov)
    if config.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs, eta_min=lr_min)
    else:
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_gamma)
    return optimizer, scheduler


def write_checkpoint(path: Path, model: nn.Module, optimizer, scheduler, state: RunState,
                     config: TrainConfig, architecture: Architecture,
                     network_config: NetworkConfig, scaler, classes: list[str],
                     rng_states: list[dict], training_images: int | None = None) -> None:
    """The run as it stands. ``rng_states``: every rank's random streams, by rank (each
    rank draws its own dropout, drop path and augmentation; a resume restores each)."""
    atomic_save({
        "format": CHECKPOINT_FORMAT,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": state.epoch,
        "best_valid_top1": state.best_valid_top1,
        "best_epoch": state.best_epoch,
        "record": state.record,
        "rng": rng_states[0],
        "rng_other_ranks": rng_states[1:],
        "world_size": len(rng_states),  # one state a process
        "precision": state.precision,  # --amp as resolved: 'auto' differs by device
        "config": config.to_dict(),
        "network": network_config.to_dict(),
        "arch": architecture.to_qualified_string(),
        "classes": list(classes),  # what each output means, for nao predict / export
        "training_images": training_images,  # a resume checks them (check_run_images)
        "revision": code_revision(),  # the code that wrote it
    }, path)


def as_saved_architecture(config: TrainConfig, saved: dict, saved_arch: str | None) -> dict:
    """``config`` as a dict, its ``arch`` and ``space`` written as the saved run wrote them
    where both name the same architecture: a name, a text form with or without its space
    prefix, or ``--space`` given or not, resume the same run."""
    current = config.to_dict()
    same = saved_arch is not None and resolve_architecture(
        config.arch, config.space).to_qualified_string() == saved_arch
    if same and "arch" in saved:
        current.update(arch=saved["arch"], space=saved.get("space"))
    return current


def try_resume(run_dir: Path, config: TrainConfig, model: nn.Module, optimizer, scheduler,
               scaler, classes: list[str] | None = None,
               context: DistributedContext | None = None, precision: str = "none",
               training_images: int | None = None) -> RunState:
    """Restore ``run_dir/last.pt`` if present; a fresh RunState otherwise. The folder's
    metrics log is checked first (a damaged line fails now, not after an epoch), and
    ``classes`` (the data's) against the classes the run trained on, and
    ``training_images`` (how many the data holds) against the number it trained on. Each rank of
    ``context`` takes back its own random streams. ``precision``: this run's --amp as
    resolved on its device, which must be the one the run trained in."""
    metrics = run_dir / METRICS_NAME
    logged = ([logged_epoch(metrics, line) for line in metrics.read_text().splitlines()]
              if metrics.exists() else [])
    path = run_dir / TRAIN_CHECKPOINT
    if not path.exists():
        check_checkpoint_not_lost(run_dir, logged)
        return RunState(precision=precision)
    checkpoint = load_checkpoint(path, START_OVER)  # the command takes no checkpoint file
    with restoring(path):
        saved = checkpoint.get("config", {})
        # --amp compares as resolved where the file says how it resolved ('auto' is bf16 on
        # CUDA, float32 elsewhere); an older file compares the option as written
        resolved = checkpoint.get("precision")
        current = pipeline_as_saved(saved, as_saved_architecture(config, saved,
                                                                 checkpoint.get("arch")))
        check_same_run(saved, current, path,
                       RESUMABLE_CHANGES | ({"amp"} if resolved else set()), "run",
                       ADDED_OPTIONS)
        check_same_precision(path, resolved, precision, config.amp)
    check_run_classes(path, checkpoint.get("classes"), classes, "trained")
    check_run_images(path, checkpoint.get("training_images"), training_images, "trained")
    with restoring(path):
        unwrap(model).load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler is not None and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        restore_rank_random_state(checkpoint, config, context)
        return RunState(int(checkpoint["epoch"]), float(checkpoint["best_valid_top1"]),
                        int(checkpoint["best_epoch"]), checkpoint.get("record"),
                        checkpoint.get("world_size"), precision)


def check_same_precision(path: Path, saved: str | None, current: str, asked: str) -> None:
    """A UserError where the run trained in another autocast than this one would: a run
    started on the CPU with --amp auto (float32) and resumed on CUDA (bf16) changed its
    arithmetic without a word."""
    if saved is not None and saved != current:
        raise UserError(f"{path} trained with --amp {saved}; --amp {asked} is {current} on this "
                        f"device: pass --amp {saved} to resume the run as it trained")


def restore_rank_random_state(checkpoint: dict, config: TrainConfig,
                              context: DistributedContext | None) -> None:
    """This rank's random streams as saved. Where the checkpoint has none for this rank
    (another number of processes wrote it, or a version that kept rank 0's alone), the
    rank is seeded afresh from the seed, its rank and the epoch, so that no two ranks
    draw the same dropout and augmentation."""
    rank = context.rank if context is not None else 0
    world_size = context.world_size if context is not None else 1
    others = checkpoint.get("rng_other_ranks") or []
    if rank == 0:
        restore_rng_state(checkpoint["rng"])
    elif len(others) == world_size - 1:
        restore_rng_state(others[rank - 1])
    else:
        seed_everything(rank_seed(config.seed, rank, int(checkpoint["epoch"])))


def rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """The seed of process ``rank`` of a training from ``epoch``: rank 0's is the seed
    itself (a one-process run seeds as released); another rank's is derived from the
    seed, the rank and the epoch, so that no rank of one run draws what a rank of a run
    with another seed draws (``seed + rank`` made seed 0's rank 1 seed 1's rank 0)."""
    return seed if rank == 0 else derive_seed(seed, "train-rank", rank, epoch)


def check_checkpoint_not_lost(run_dir: Path, logged: list[int]) -> None:
    """A UserError where ``run_dir`` holds a training that got past its first checkpoint
    (an epoch after the first logged, or its result written) without its ``last.pt``
    (:func:`naonet.run_folder.lost_checkpoint`). A line of the first epoch alone is a run
    killed between its log and its first checkpoint: it starts over."""
    finished = (run_dir / RESULT_NAME).exists()
    if not finished and max(logged, default=0) < 2:
        return
    what = "a finished training" if finished else f"{max(logged)} epochs of a training"
    raise lost_checkpoint(run_dir, f"{what} ({METRICS_NAME}, {RESULT_NAME})",
                          TRAIN_CHECKPOINT, "train anew")


def log_epoch(run_dir: Path, record: dict) -> None:
    """Append one JSON line per epoch (before the checkpoint; a resumed run that repeats
    an epoch drops that epoch's line and any later ones first, so no line repeats)."""
    path = run_dir / METRICS_NAME
    lines = path.read_text().splitlines() if path.exists() else []
    lines = [line for line in lines if logged_epoch(path, line) < record["epoch"]]
    lines.append(json.dumps(record))
    atomic_write_text(path, "\n".join(lines) + "\n")


def logged_record(run_dir: Path, epoch: int) -> dict | None:
    """The line ``metrics.jsonl`` holds for ``epoch``, if any: a finished run rerun
    reports it (and rewrites result.json with it) instead of evaluating again."""
    path = run_dir / METRICS_NAME
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines()
               if logged_epoch(path, line) == epoch]
    return records[-1] if records else None


def logged_epoch(path: Path, line: str) -> int:
    """The epoch of one line of ``metrics.jsonl``."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, TypeError, KeyError):
        raise UserError(f"{path} has a line that is not an epoch's record ({line[:40]!r}); "
                        "delete that line (or the file) and rerun") from None


def restore_best_checkpoint(run_dir: Path, state: RunState, save: Callable[[Path], None],
                            say: Callable[[str], None] = print_line) -> None:
    """Write best.pt again (with ``save``, the run's checkpoint writer) if the last
    committed epoch was the best and a kill came before best.pt was written (the model
    holds that epoch's weights: just resumed). A best.pt of an earlier epoch that is
    missing or unreadable cannot be made again: ``say`` tells so (the run's last line
    named it as the best epoch's file, which it was not)."""
    if state.epoch == 0 or state.best_epoch <= 0:
        return
    best = run_dir / BEST_CHECKPOINT
    try:
        if best.is_file() and load_checkpoint(best).get("epoch") == state.best_epoch:
            return
    except UserError:  # unreadable: written again below, or said
        pass
    if state.best_epoch == state.epoch:
        save(best)
    else:
        say(f"note: {best} is missing or damaged: it held epoch {state.best_epoch}, the best, "
            f"which last.pt (epoch {state.epoch}) cannot give back; the figures logged for "
            f"it stand in {METRICS_NAME}")


class TensorBoardLog:
    """Per-epoch scalars for TensorBoard (rank 0, when ``--tensorboard`` is on)."""

    def __init__(self, run_dir: Path, first_step: int = 1):
        SummaryWriter = self.writer_class()  # noqa: N806 - a class
        # A resumed run repeats the epochs after last.pt: their old events are purged.
        self.writer = SummaryWriter(str(run_dir / "tensorboard"),
                                    purge_step=first_step if first_step > 1 else None)

    @staticmethod
    def writer_class():
        """TensorBoard's ``SummaryWriter``; a UserError when tensorboard is missing (checked
        at a run's start, before its folder or data)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--tensorboard needs the tensorboard package; install it with "
                            "pip install 'naonet[tensorboard]'") from None
        return SummaryWriter

    def write(self, record: dict) -> None:
        for key, value in record.items():
            if key != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(key, value, record["epoch"])
        self.writer.flush()


@caller_random_state_kept()  # the run seeds the global streams; the caller gets its own back
def train(config: TrainConfig, show_progress: bool = True,
          log: Callable[[str], None] | None = print_line) -> dict:
    """Train ``config.arch`` as configured; returns the final metrics.

    ``log`` takes the main process's lines (the start, one per epoch, the result):
    ``print_line`` (stdout, flushed) by default, a logger's method, or None for none.
    """
    architecture = resolve_architecture(config.arch, config.space)  # any space's
    # before the processes meet: each refuses bad options alike, and the first says so
    check_before_any_work(config, architecture)
    context = init_distributed(config.device)
    say = main_process_log(log, context.is_main)
    seed_everything(rank_seed(config.seed, context.rank))
    paths = fast_paths_for(config, context.device)
    apply_fast_paths(paths, context.device)
    precision = Precision.from_name(paths.amp, context.device)
    run_dir = Path(config.output)
    if config.tensorboard and context.is_main:
        TensorBoardLog.writer_class()  # missing, it is said before anything is done
    if context.is_main:
        claim_run_folder(run_dir, "train")  # one run per folder, before anything is written
    data = build_data(config.data_config(), context.device, seed=config.seed,
                      rank=context.rank, world_size=context.world_size,
                      channels_last=paths.channels_last)
    space = architecture.space
    network_config = network_config_for(config, data, space)
    check_network_fits(architecture, network_config, context.device)
    network = space.build_network(architecture, network_config).to(context.device)
    network = to_memory_format(network, paths.channels_last)
    optimizer, scheduler = build_optimizer_and_schedule(network, config, context.world_size)
    scaler = precision.grad_scaler()
    state = try_resume(run_dir, config, network, optimizer, scheduler, scaler, data.classes,
                       context, paths.amp, data.training_images)
    write_run_config(run_dir, config.to_dict(), context.is_main)
    # Evaluation never goes through DDP (ranks evaluate different numbers of batches).
    eval_model = maybe_compile(network, paths.compile)
    model: nn.Module = eval_model
    if context.is_distributed:
        model = maybe_compile(wrap_data_parallel(network, context), paths.compile)
    _announce(say, context, config, architecture, network, data, state, paths)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    board = (TensorBoardLog(run_dir, first_step=state.epoch + 1)
             if config.tensorboard and context.is_main else None)

    def save(path: Path, rng_states: list[dict]) -> None:  # the run as it stands
        write_checkpoint(path, model, optimizer, scheduler, state, config, architecture,
                         network_config, scaler, data.classes, rng_states,
                         data.training_images)

    rng_states = gather_objects(capture_rng_state())  # every rank's, for rank 0 to save
    if context.is_main:
        restore_best_checkpoint(run_dir, state, functools.partial(save, rng_states=rng_states),
                                say)
    if state.epoch < config.epochs:
        read_evaluation_images(data, say)
    steps_per_epoch = len(data.train)
    last_test = None
    while state.epoch < config.epochs:
        last_test = _run_epoch(model, eval_model, data, optimizer, scheduler, criterion,
                               precision, scaler, state, config, context, steps_per_epoch,
                               show_progress, say)
        state.epoch, state.record = state.epoch + 1, last_test
        rng_states = gather_objects(capture_rng_state())
        if context.is_main:
            _commit_epoch(run_dir, state, last_test, board,
                          functools.partial(save, rng_states=rng_states))
    if last_test is None:  # already finished: report its last epoch as it was logged
        last_test = _logged_last_epoch(run_dir, state, data,
                                       lambda: _final_evaluation(eval_model, data, precision))
    validated = state.best_epoch > 0  # null, not a sentinel, without a validation split
    result = {**last_test, "arch": architecture.to_qualified_string(),
              "params": count_parameters(network),
              "best_valid_top1": state.best_valid_top1 if validated else None,
              "best_epoch": state.best_epoch if validated else None}
    if context.is_main:
        atomic_write_text(run_dir / RESULT_NAME, json.dumps(result, indent=2) + "\n")
    say(f"done: epoch {state.epoch}/{config.epochs}, {_final_figures(result)} "
        f"(results in {run_dir})")
    barrier()
    return result


def _commit_epoch(run_dir: Path, state: RunState, record: dict,
                  board: TensorBoardLog | None, save: Callable[[Path], None]) -> None:
    """Write the epoch just trained (the main process): its logs, then ``last.pt``, which
    commits it, then ``best.pt`` where it is the best so far."""
    # The logs come first: a kill before last.pt repeats the epoch and rewrites them.
    # best.pt comes after, from the committed state: a kill before it is mended on resume
    # (restore_best_checkpoint), so it never holds an epoch the run then repeated.
    log_epoch(run_dir, record)
    if board is not None:
        board.write(record)
    save(run_dir / TRAIN_CHECKPOINT)
    if state.best_epoch == state.epoch:
        save(run_dir / BEST_CHECKPOINT)


def _logged_last_epoch(run_dir: Path, state: RunState, data: DataBundle,
                       evaluate: Callable[[], dict]) -> dict:
    """The last epoch's figures of a run that had already finished, as they were logged
    (its checkpoint keeps the line too: metrics.jsonl may have been deleted; a checkpoint
    of an older naonet has none, and ``evaluate`` measures the epoch again)."""
    record = dict(logged_record(run_dir, state.epoch) or state.record or evaluate())
    for key in ("valid_top5", "test_top5"):  # an older run's record says 1.0 there
        if key in record:
            record[key] = shown_top5(record[key], data.num_classes)
    return record


def check_before_any_work(config: TrainConfig, architecture: Architecture) -> None:
    """What the options alone refuse, before a folder is made or the data read: bad input
    writes nothing, not even a run folder."""
    from naonet.distributed import resolve_device
    from naonet.launcher import launch_position
    from naonet.runtime import resolve_amp

    # the device this process will take, and the precision it allows: options first
    resolve_amp(config.amp, resolve_device(config.device, launch_position()[2]))
    check_batch_for_aux_head(config, architecture.space)
    check_augmentation(config.data_config())
    check_worker_count(config.workers)
    if not config.download:
        existing_data_path(config.data, config.dataset)


def read_evaluation_images(data: DataBundle, say: Callable[[str], None]) -> None:
    """Read every image file the evaluation reads as it goes once, at the start: a damaged
    one is named now, not after an epoch of training that its error then loses (images
    decoded into memory at the start need no second look)."""
    parts = [part for part in (data.valid, data.test) if reads_files_as_it_goes(part)]
    if not parts:
        return
    count = sum(part.total_images() for part in parts)
    say(f"reading the {count:,} evaluation images once (a damaged file is named before "
        "the training, not after its first epoch)")
    for part in parts:
        for _ in part:
            raise_if_stopped()


def fast_paths_for(config: TrainConfig, device: torch.device) -> FastPaths:
    """What the config's fast-path options (``auto`` included) mean on ``device``."""
    return FastPaths.resolve(device, channels_last=config.channels_last, amp=config.amp,
                             compile=config.compile, host_allocator=config.host_allocator)


def _run_epoch(model, eval_model, data: DataBundle, optimizer, scheduler, criterion,
               precision, scaler, state: RunState, config: TrainConfig, context,
               steps_per_epoch: int, show_progress: bool,
               say: Callable[[str], None]) -> dict:
    epoch = state.epoch
    data.train.set_epoch(epoch)
    lr = optimizer.param_groups[0]["lr"]
    progress = step_progress(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}",
                             show_progress and context.is_main)
    train_stats = train_one_epoch(
        model, data.train, optimizer, criterion, aux_weight=config.aux_weight,
        grad_clip=config.grad_clip, precision=precision, scaler=scaler,
        first_step=epoch * steps_per_epoch, total_steps=config.epochs * steps_per_epoch,
        progress=progress, log_every=config.log_every)
    if progress is not None:
        progress.close()
    scheduler.step()  # after the epoch's optimizer steps, never before
    broadcast_buffers(unwrap(model))  # every rank evaluates what rank 0 saves
    valid_stats = (evaluate(eval_model, data.valid, precision) if data.valid is not None
                   else None)
    test_stats = evaluate(eval_model, data.test, precision) if data.test is not None else None
    if valid_stats is not None and valid_stats.top1 > state.best_valid_top1:
        state.best_valid_top1, state.best_epoch = valid_stats.top1, epoch + 1
    record = _epoch_record(epoch + 1, lr, train_stats, valid_stats, test_stats)
    record["revision"] = code_revision()  # the code that trained this epoch (a resumed run
    # may span several)
    valid_text = f" valid {100 * valid_stats.top1:.2f}" if valid_stats else ""
    test_text = f" test {100 * test_stats.top1:.2f}" if test_stats else ""
    say(f"epoch {epoch + 1}/{config.epochs} lr {lr:.4g} train loss {train_stats.loss:.4f} "
        f"acc {100 * train_stats.top1:.2f}{valid_text}{test_text} % "
        f"({train_stats.images_per_second:.0f} img/s)")
    return record


def _epoch_record(epoch: int, lr: float, train_stats: EpochStats,
                  valid_stats: EpochStats | None, test_stats: EpochStats | None) -> dict:
    record = {"epoch": epoch, "lr": lr, "train_loss": train_stats.loss,
              "train_top1": train_stats.top1, "train_images": train_stats.images,
              "train_images_per_second": train_stats.images_per_second}
    # no test images, no validation split: null, so every line has the same keys
    record.update(test_loss=None, test_top1=None, test_top5=None, test_images=None,
                  valid_loss=None, valid_top1=None, valid_top5=None, valid_images=None)
    if test_stats is not None:
        record.update(test_loss=test_stats.loss, test_top1=test_stats.top1,
                      test_top5=test_stats.top5, test_images=test_stats.images)
    if valid_stats is not None:
        record.update(valid_loss=valid_stats.loss, valid_top1=valid_stats.top1,
                      valid_top5=valid_stats.top5, valid_images=valid_stats.images)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in record.items()}


def _final_evaluation(model, data: DataBundle, precision: Precision) -> dict:
    if data.test is None:  # trained on train/ alone: its validation split is the figure
        return {"test_loss": None, "test_top1": None, "test_top5": None, "test_images": None}
    stats = evaluate(model, data.test, precision)
    return {"test_loss": stats.loss, "test_top1": stats.top1, "test_top5": stats.top5,
            "test_images": stats.images}


def _final_figures(result: dict) -> str:
    """The run's last figures in words: its test accuracy, and its best validation
    accuracy (best.pt's) where it holds a validation split."""
    best = (f"best valid {100 * result['best_valid_top1']:.2f} % at epoch "
            f"{result['best_epoch']}" if result.get("best_epoch") else None)
    if result.get("test_top1") is None:
        return f"{best} (no test images)"
    test = "test " + accuracy_text(result["test_top1"], result["test_top5"])
    return test if best is None else f"{test}; {best} (best.pt)"


def _announce(say: Callable[[str], None], context, config: TrainConfig,
              architecture: Architecture, network: NAONet, data: DataBundle, state: RunState,
              paths: FastPaths) -> None:
    where = context.describe()
    resumed = f", resuming after epoch {state.epoch}" if state.epoch else ""
    if state.epoch and state.processes not in (None, context.world_size):  # allowed, but
        # not the same run as on one number throughout
        trained_on = counted(state.processes, "process", "processes")
        new_streams = (", the processes added draw new random streams"
                       if context.world_size > state.processes else "")
        resumed += (f" (trained on {trained_on} so far: the learning rate goes on as it "
                    f"began{new_streams})")
    if state.epoch >= config.epochs:
        resumed = f", finished (epoch {state.epoch}): its results as saved"
    say(f"training {architecture.to_qualified_string()} on {config.dataset} at "
        f"{data.image_size} px ({where}): {count_parameters(network):,} parameters, "
        f"{counted(len(data.train), 'step')}/epoch, {counted(config.epochs, 'epoch')}"
        f"{resumed}; "
        f"{paths.describe()}")
    slow_bf16 = slow_bf16_note(context.device, paths.amp)
    if slow_bf16 is not None:
        say(slow_bf16)
    if data.note is not None:
        say(f"note: {data.note}")
    if data.test is None:
        say(f"no test images in {config.data} (no test/ or val/ folder of class folders): the "
            f"run reports its {config.valid_size} held-out validation images")
    elif config.test_subset and data.test.total_images() == config.test_subset:
        # (a --test-subset of the test set's size or more evaluates all of it)
        say(f"test figures on {config.test_subset:,} of the test images (--test-subset): "
            "nao eval gives the whole test set's")
