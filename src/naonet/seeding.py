"""The one way naonet builds something from a seed without touching the caller's
random state."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def seeded(seed: int, make: Callable[[], T]) -> T:
    """``make()`` with torch's global CPU generator seeded by ``seed``; the global state
    is restored afterwards, so building a network (or anything that draws at
    initialisation) neither depends on nor changes what was drawn before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()
