"""Random search: distinct uniformly random architectures until the budget is spent."""

from __future__ import annotations

import random
from dataclasses import dataclass

from naonet.strategies.base import Evaluator, SearchSpace, query_random, search_inputs


@dataclass(frozen=True)
class RandomSearchConfig:
    """Random search has no options."""


def random_search(space: SearchSpace, evaluator: Evaluator, seed: int,
                  config: RandomSearchConfig | None = None) -> None:
    """Query random architectures until the evaluator's budget is spent."""
    space, config, seed = search_inputs(space, evaluator, seed, config, RandomSearchConfig,
                                        "random")
    rng = random.Random(seed)
    query_random(space, evaluator, rng, evaluator.remaining)
