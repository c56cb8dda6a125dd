"""Search strategies by name: each runs over a space and an evaluator with a budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from naonet.errors import UserError
from naonet.strategies.base import Evaluator, SearchSpace
from naonet.strategies.evolution import EvolutionConfig, regularized_evolution
from naonet.strategies.nao import NAOConfig, nao_search
from naonet.strategies.random_search import RandomSearchConfig, random_search


@dataclass(frozen=True)
class Strategy:
    """A named search strategy, its config class and what it does."""

    name: str
    run: Callable[[SearchSpace, Evaluator, int, object], None]
    config_class: type
    description: str


STRATEGIES: dict[str, Strategy] = {
    "nao": Strategy("nao", nao_search, NAOConfig,
                    "NAO predictor loop: controller trained on the queried architectures, "
                    "gradient steps in its embedding space"),
    "random": Strategy("random", random_search, RandomSearchConfig,
                       "distinct uniformly random architectures"),
    "evolution": Strategy("evolution", regularized_evolution, EvolutionConfig,
                          "regularized evolution (Real et al. 2019)"),
}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise UserError(f"unknown search strategy {name!r}; use one of: "
                        f"{', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def run_strategy(name: str, space: SearchSpace, evaluator: Evaluator, seed: int,
                 config=None) -> None:
    """Run strategy ``name`` until the evaluator's budget is spent (``space``: a space
    or its name)."""
    from naonet.spaces import get_space

    if space is None:  # get_space(None) is the default space: say which instead
        raise UserError("run_strategy needs the space to search (a space or its name)")
    space = get_space(space)
    strategy = get_strategy(name)
    if evaluator.budget is None:
        raise UserError("a search needs a query budget")
    if evaluator.budget > space.size:
        raise UserError(f"a budget of {evaluator.budget} queries exceeds the "
                        f"{space.size} architectures of the space")
    if config is not None and not isinstance(config, strategy.config_class):
        raise UserError(f"strategy {name!r} takes a {strategy.config_class.__name__}, got "
                        f"{type(config).__name__}")
    strategy.run(space, evaluator, seed, config or strategy.config_class())
