"""Random architectures, and the pool sampler that picks one architecture per training step.

Every random draw goes through a generator the caller passes in (a NumPy
``Generator``, a ``random.Random`` or a ``torch.Generator``), so a search that saves
that generator's state reproduces and resumes exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
import torch

from naonet.errors import UserError
from naonet.spaces import SearchSpace, get_space

RandomSource = np.random.Generator | random.Random | torch.Generator

# A pool of distinct architectures is asked for; give up after this many draws per
# architecture (only reachable with a tiny custom space).
MAX_DRAWS_PER_ARCHITECTURE = 100


# ----------------------------------------------------------------------- random draws
def _uniform_integers(rng: RandomSource, highs: Sequence[int], rows: int) -> list[list[int]]:
    """``rows`` lists; entry ``i`` of each is uniform in ``[0, highs[i])``."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, np.asarray(highs), size=(rows, len(highs))).tolist()
    if isinstance(rng, random.Random):
        return [[rng.randrange(high) for high in highs] for _ in range(rows)]
    if isinstance(rng, torch.Generator):
        limits = torch.as_tensor(highs, dtype=torch.float64, device=rng.device)
        uniform = torch.rand(rows, len(highs), dtype=torch.float64, device=rng.device,
                             generator=rng)  # [rows, len(highs)]
        return (uniform * limits).floor().long().tolist()
    raise TypeError(f"rng must be a numpy Generator, random.Random or torch.Generator, "
                    f"not {type(rng).__name__}")


def _weighted_indices(rng: RandomSource, probabilities: np.ndarray, count: int) -> list[int]:
    """``count`` indices drawn with replacement with the given probabilities."""
    if isinstance(rng, np.random.Generator):
        return rng.choice(len(probabilities), size=count, p=probabilities).tolist()
    if isinstance(rng, random.Random):
        return rng.choices(range(len(probabilities)), weights=probabilities.tolist(), k=count)
    if isinstance(rng, torch.Generator):
        weights = torch.as_tensor(probabilities, dtype=torch.float64, device=rng.device)
        return torch.multinomial(weights, count, replacement=True, generator=rng).tolist()
    raise TypeError(f"rng must be a numpy Generator, random.Random or torch.Generator, "
                    f"not {type(rng).__name__}")


# ----------------------------------------------------------------------- architectures
def sample_architectures(space: str | SearchSpace, count: int, rng: RandomSource,
                         unique: bool = True) -> list:
    """``count`` uniformly random valid architectures of ``space``.

    Every entry of the space's integer coding is drawn independently and uniformly (as
    the released ``generate_arch``). With ``unique`` (the default) duplicates are
    redrawn, so the pool holds ``count`` distinct architectures; ``unique=False`` keeps
    them, as the released code does.
    """
    space = get_space(space)
    if count < 0:
        raise UserError(f"cannot sample {count} architectures; ask for 0 or more")
    if hasattr(space, "feasible"):  # a FeasibleSpace: its integer coding is the whole space's
        raise UserError("sample_architectures draws from a whole space, and this one is "
                        "limited to a budget; draw each with space.sample(rng), which meets "
                        "it, or pass space.space to draw without the budget")
    limits = space.integer_limits()
    if not unique:
        return [space.from_integers(values) for values in _uniform_integers(rng, limits, count)]
    if count > space.size:
        raise UserError(f"cannot draw {count:,} distinct architectures of the {space.name!r} "
                        f"space, which holds {space.size:,}; ask for fewer or pass "
                        "unique=False")
    chosen: dict[tuple[int, ...], None] = {}  # an insertion-ordered set
    draws = 0
    while len(chosen) < count:
        if draws > MAX_DRAWS_PER_ARCHITECTURE * count:
            raise UserError(f"could not draw {count} distinct architectures of the "
                            f"{space.name!r} space; ask for fewer or pass unique=False")
        missing = count - len(chosen)
        for values in _uniform_integers(rng, limits, missing):
            chosen.setdefault(tuple(values))
        draws += missing
    return [space.from_integers(list(values)) for values in chosen]


# ----------------------------------------------------------------------- pool sampling
def _balanced_weights(pool: Sequence, config) -> np.ndarray:
    """Parameter counts of the discrete networks (V2: bigger networks train more often)."""
    return np.array([arch.space.parameter_count(arch, config) for arch in pool],
                    dtype=np.float64)


def _uniform_weights(pool: Sequence, config) -> np.ndarray:
    return np.ones(len(pool), dtype=np.float64)


# SAMPLING_WEIGHTS[name](pool, discrete network config) -> unnormalised weights
SAMPLING_WEIGHTS: dict[str, Callable[[Sequence, object], np.ndarray]] = {
    "balanced": _balanced_weights,
    "uniform": _uniform_weights,
}


def sampling_probabilities(pool: Sequence, sampling: str = "balanced",
                           network_config=None) -> np.ndarray:
    """Probability of each pool member being trained at a step; sums to 1.

    ``balanced`` (NAO-V2): proportional to the parameter count of the discrete network
    of ``network_config`` (default: the search's N 3, C 20 CIFAR network of the space,
    no aux head). ``uniform``: all equal.
    """
    if sampling not in SAMPLING_WEIGHTS:
        raise UserError(f"unknown sampling {sampling!r}; use one of: "
                        f"{', '.join(SAMPLING_WEIGHTS)}")
    if not pool:
        raise UserError("cannot sample from an empty architecture pool; give at least one")
    config = network_config or default_network_config(pool[0].space)
    weights = SAMPLING_WEIGHTS[sampling](pool, config)
    return weights / weights.sum()


def default_network_config(space: SearchSpace):
    """The discrete network of the released search's supernet size (C 20, N 3)."""
    from naonet.supernet.config import SupernetConfig

    size = SupernetConfig()
    return space.network_config(size.channels, size.layers, size.num_classes, size.skeleton)


def equal_group_shares(probabilities: np.ndarray, groups: Sequence) -> np.ndarray:
    """``probabilities`` rescaled so each distinct label of ``groups`` holds an equal
    share; within a group they keep their proportions."""
    labels = np.asarray(groups)
    shares = np.empty_like(probabilities)
    distinct = np.unique(labels)
    for label in distinct:
        members = labels == label
        shares[members] = probabilities[members] / probabilities[members].sum() / len(distinct)
    return shares


class PoolSampler:
    """Draws architectures of a fixed pool with ``balanced`` or ``uniform`` probabilities.

    ``rng`` is kept by reference: saving and restoring its state saves and restores
    the sampler's.

    With ``group_of`` (architecture -> a label), every group present in the pool gets
    the same share of the steps, split among its members as above (a few-shot supernet
    trains each of its copies equally, whatever the pool's mix).
    """

    def __init__(self, pool: Sequence, rng: RandomSource, sampling: str = "balanced",
                 network_config=None, group_of: Callable | None = None):
        from naonet.spaces import parse_architecture

        # text forms as the architectures they name (the sampler hands them to a
        # supernet); it knows no space, so a form that does not name one is the default's
        self.pool = [parse_architecture(arch) if isinstance(arch, str) else arch
                     for arch in pool]
        self.rng = rng
        self.sampling = sampling
        self.probabilities = sampling_probabilities(self.pool, sampling, network_config)
        if group_of is not None:
            self.probabilities = equal_group_shares(
                self.probabilities, [group_of(arch) for arch in self.pool])

    def sample(self):
        """One architecture (the one a training step uses)."""
        return self.sample_many(1)[0]

    def sample_many(self, count: int) -> list:
        """``count`` architectures drawn independently, with replacement."""
        return [self.pool[i] for i in _weighted_indices(self.rng, self.probabilities, count)]

    def __len__(self) -> int:
        return len(self.pool)
