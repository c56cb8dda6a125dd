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
    """The registered strategy ``name`` (``nao``, ``random``, ``evolution``), or a
    UserError listing them."""
    if name not in STRATEGIES:
        raise UserError(f"unknown search strategy {name!r}; use one of: "
                        f"{', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def run_strategy(name: str, space: SearchSpace, evaluator: Evaluator, seed: int,
                 config=None) -> None:
    """Run strategy ``name`` until the evaluator's budget is spent (``space``: a space
    or its name)."""
    get_strategy(name).run(space, evaluator, seed, config)
