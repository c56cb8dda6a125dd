"""Process-group handling for runs launched by ``torchrun``; a no-op on one process.

Only rank 0 writes files and shows progress. Metrics are summed over ranks before they
are reported, so logs show the figures of the whole data-parallel job.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist

from naonet.errors import UserError
from naonet.launcher import launch_position

_joined_group = False  # whether init_distributed made the process group (then it ends it)
_used_gloo = False  # whether this process ever joined a gloo group (see exit_process)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs and who it is in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        """Where the job runs, for its first line: ``cpu``, ``cuda:0 x 2 processes``."""
        processes = f" x {self.world_size} processes" if self.is_distributed else ""
        return f"{self.device}{processes}"


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' picks CUDA (this process's GPU), then MPS, then the CPU."""
    from naonet.options import DEVICE_HELP, valid_device

    if not valid_device(preference):
        raise UserError(f"{DEVICE_HELP}, got {preference!r}")
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is visible; use "
                            "--device cpu or auto")
        if preference == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        index, count = int(preference.split(":")[1]), torch.cuda.device_count()
        if index >= count:
            raise UserError(f"--device {preference} names GPU {index}, but {count} "
                            f"{'is' if count == 1 else 'are'} visible (0 to {count - 1}); "
                            "pick one of them, or --device cuda")
    if preference == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but MPS is not available; use auto")
    return torch.device(preference)


def init_distributed(device_preference: str = "auto") -> DistributedContext:
    """Join the torchrun process group if there is one (NCCL on CUDA, gloo otherwise)."""
    rank, world_size, local_rank = launch_position()
    device = resolve_device(device_preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        global _joined_group
        _joined_group = True
        if backend == "gloo":
            global _used_gloo
            _used_gloo = True
            # Gloo's worker threads outlive a group nobody destroyed and can abort the
            # interpreter as it shuts down (SIGABRT, "terminate called without an active
            # exception"; pytorch/pytorch#190489). Destroying a gloo group is local to
            # this process, so it is safe even when another rank failed.
            atexit.register(close_distributed)
    return DistributedContext(rank, world_size, local_rank, device)


def close_distributed() -> None:
    """Leave the process group that :func:`init_distributed` made; nothing otherwise
    (a group the caller made stays theirs to end).

    Every ``nao`` command calls it on success. A script of its own should end the same
    way: drop the modules :func:`wrap_data_parallel` returned (``del model``), call
    this, then :func:`exit_process`. The exit-time fallback cannot do the first half: a
    DistributedDataParallel wrapper still alive at exit keeps gloo work that holds Python
    objects, and gloo can then abort the interpreter as it shuts down. Measured with the
    two-process script of tests/test_distributed.py (60 torchrun runs each, two at once
    on 2 cores): 7 aborts relying on the fallback, 3 calling this with the wrapper alive,
    0 after ``del`` (but 1 in a later 60, and one in CI: hence :func:`exit_process`).
    """
    global _joined_group
    if _joined_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _joined_group = False


def exit_process(status: int) -> NoReturn:
    """End the process with ``status`` (call :func:`close_distributed` first).

    A process that ran a gloo group skips the interpreter's finalization: even after the
    group is destroyed and the DDP wrappers dropped, gloo can abort it there (SIGABRT,
    "terminate called without an active exception", no Python frame), failing a run that
    had finished. Measured with the two-process script of tests/test_distributed.py, two
    loops of torchrun runs at once on 2 cores: 1 abort in 60 runs ending with ``del
    model; close_distributed()`` (and one in a CI run), 0 in 120 ending with this.
    Buffers are flushed first; atexit handlers do not run (the system releases the run
    folder's lock).
    """
    if _used_gloo:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over all ranks (in place and returned); identity on one process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(value, source: int = 0):
    """``value`` of rank ``source`` on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=source)
    return holder[0]


def gather_objects(value) -> list:
    """``value`` of every rank, by rank, on every rank (``[value]`` on one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_buffers(module: torch.nn.Module, source: int = 0) -> None:
    """Give every rank rank ``source``'s buffers of ``module`` (BatchNorm's running
    statistics): DistributedDataParallel copies them at the start of each training
    forward only, so after the last step each rank holds statistics its own last batch
    updated, and evaluating outside DDP would use them; a checkpoint holds rank 0's."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=source)


def wrap_data_parallel(module: torch.nn.Module, context: DistributedContext,
                       find_unused_parameters: bool = False) -> torch.nn.Module:
    """``module`` inside DistributedDataParallel on several processes; itself on one.

    ``find_unused_parameters`` is for a supernet, whose step trains only one sampled
    path: DDP then looks each step for the parameters that got no gradient. Drop the
    wrapper before :func:`close_distributed` (see there).
    """
    if not context.is_distributed:
        return module
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=find_unused_parameters)

