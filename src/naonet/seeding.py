"""The one way naonet builds something from a seed without touching the caller's
random state, and the one way it saves, restores and keeps the global random streams
(Python's, NumPy's, torch's CPU and CUDA generators)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


def seeded(seed: int, make: Callable[[], T]) -> T:
    """``make()`` with torch's global CPU generator seeded by ``seed``; the global state
    is restored afterwards, so building a network (or anything that draws at
    initialisation) neither depends on nor changes what was drawn before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


# Every random stream derived from a run's seed, each with its own number.
STREAMS = {"seed-pool": 1, "supernet-init": 2, "supernet-epoch": 3, "sampler": 4,
           "scoring": 5, "controller-init": 6, "controller-train": 7, "rerank-init": 8,
           "rerank-epoch": 9, "scoring-data": 10, "controller-fill": 11, "strategy": 12,
           "train-rank": 13, "augment": 14, "seed-pool-fill": 15, "augment-rank": 16,
           "seed-pool-descent": 17}


def derive_seed(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit seed for one random stream of one step, fixed by the run's ``seed``."""
    entropy = [seed % 2**32, seed // 2**32, STREAMS[stream], *keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) >> 1


def seed_cpu_streams(seed: int) -> None:
    """Seed the global streams that draw on the CPU: Python's, NumPy's (with the low 32
    bits) and torch's CPU generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)


def seed_everything(seed: int) -> None:
    """Seed every global stream: the CPU's, and CUDA's and MPS's (``torch.manual_seed``)."""
    seed_cpu_streams(seed)
    torch.manual_seed(seed)


@contextmanager
def random_streams_kept() -> Iterator[None]:
    """Hand Python's, NumPy's and torch's CPU streams back as they were after the block:
    the cheap form of :func:`caller_random_state_kept` for a block that draws on the CPU
    only (a batch of image transforms)."""
    python, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)


def capture_rng_state() -> dict:
    """Every random stream a run draws from, as weights-only-loadable values."""
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": _to_plain(random.getstate()),
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)),
                  *numpy_state[2:]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuple(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        # A run may resume with fewer GPUs visible (--device may change): restore those.
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _to_plain(value):
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _to_tuple(value):
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value


@contextmanager
def caller_random_state_kept() -> Iterator[None]:
    """Run a block that seeds the global random streams (a training run, a search) and
    hand the caller's streams back afterwards: a caller that draws between runs, or
    loops over them, draws as if the runs had not happened. CUDA's streams too: saved
    when CUDA is in use, else re-seeded as the caller left them (``torch.manual_seed``
    seeds CUDA as well, even before CUDA starts); and MPS's where it is available."""
    state = capture_rng_state()
    seed_for_cuda = (torch.initial_seed()
                     if torch.cuda.is_available() and "cuda" not in state else None)
    mps = _mps_available()
    mps_state = torch.mps.get_rng_state() if mps else None
    try:
        yield
    finally:
        restore_rng_state(state)
        if seed_for_cuda is not None:
            torch.cuda.manual_seed_all(seed_for_cuda)
        if mps_state is not None:
            torch.mps.set_rng_state(mps_state)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
