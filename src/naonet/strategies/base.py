"""What a search strategy works with: a space to draw from and an evaluator to query.

A strategy is ``run(space, evaluator, seed, config)``; it queries architectures until
the evaluator's budget is spent and returns nothing: the evaluator's history is the
result. Strategies see validation scores only.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from numbers import Integral
from typing import Protocol

from naonet.errors import UserError
from naonet.spaces import SearchSpace
from naonet.spaces.protocol import ENUMERABLE_SIZE, MAX_UNSEEN_DRAWS, sample_unseen


class Evaluator(Protocol):
    """Scores architectures (higher is better) and counts distinct queries."""

    budget: int | None
    exhausted: bool
    remaining: int | None

    def known(self, architecture) -> bool:
        """Whether ``architecture`` was queried already (asking again is free)."""

    def query(self, architecture) -> float:
        """The score of ``architecture``, one query of the budget the first time."""

    def history(self) -> list[tuple[Hashable, float]]:
        """(architecture, score) in the order they were first queried."""


def search_inputs(space, evaluator: Evaluator, seed: int, config, config_class: type,
                  strategy: str):
    """The space (a name is looked up), the config (None: the defaults) and the seed (a
    plain int) a strategy runs with, or a UserError for what cannot make a search: no
    space, a seed that is no integer from 0 to 2**32 - 1 (--seed's range), an evaluator
    without a query budget or with one above the space's size, another strategy's
    config."""
    from naonet.options import SEED_LIMIT, check_seed
    from naonet.spaces import get_space

    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise UserError(f"a search's seed is an integer, got {seed!r} "
                        f"({type(seed).__name__}); pass one from 0 to {SEED_LIMIT - 1:,}")
    seed = int(seed)  # NumPy's integers too, which random.Random refuses
    check_seed(seed, "a search's seed")

    if space is None:  # get_space(None) is the default space: say which instead
        raise UserError("a search needs the space to search (a space or its name)")
    space = get_space(space)
    if getattr(evaluator, "budget", None) is None:
        raise UserError("a search needs a query budget; give the evaluator one "
                        "(BudgetedEvaluator(measure, budget=N))")
    counted = getattr(space, "counts_its_size", False)  # a FeasibleSpace's own count
    if counted and space.size == 0:
        space.sample(random.Random(0))  # raises the error that names the smallest value
    if evaluator.budget > space.size:
        within = " within the size budget" if counted else ""
        raise UserError(f"a budget of {evaluator.budget:,} queries exceeds the "
                        f"{space.size:,} architectures of the space{within}; lower --budget "
                        f"to {space.size:,} or less")
    if config is not None and not isinstance(config, config_class):
        raise UserError(f"strategy {strategy!r} takes a {config_class.__name__}, got "
                        f"{type(config).__name__}")
    return space, config or config_class(), seed


class Seen(set):
    """Architectures already taken, with the evaluator's ``known`` (for proposing new
    architectures outside a query loop, as the one-shot search's rounds do)."""

    def known(self, architecture) -> bool:
        return architecture in self


def sample_new(space: SearchSpace, evaluator: Evaluator, rng: random.Random,
               max_tries: int = MAX_UNSEEN_DRAWS):
    """A uniformly random architecture the evaluator has not seen yet."""
    architecture = sample_unseen(space, evaluator.known, rng, max_tries)
    if architecture is not None:
        return architecture
    # a table search and the one-shot search's baselines both end here: name both fixes
    fewer = ("ask for fewer (a table search's --budget; a one-shot search's --rounds or "
             "--new-architectures)")
    if space.size <= ENUMERABLE_SIZE:  # listed: none is left
        raise UserError("every architecture of the space (within any size budget) has been "
                        f"queried; {fewer}")
    raise UserError(f"no unseen architecture in {max_tries} random draws: the architectures "
                    "asked for are close to the number the space (within any size budget) "
                    f"holds; {fewer}")


def query_random(space: SearchSpace, evaluator: Evaluator, rng: random.Random,
                 count: int) -> None:
    """Query ``count`` new random architectures (fewer if the budget runs out)."""
    for _ in range(count):
        if evaluator.exhausted:
            return
        evaluator.query(sample_new(space, evaluator, rng))
