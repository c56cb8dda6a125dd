"""Search strategies over an evaluator with a query budget: NAO, random, evolution."""

from naonet.strategies.base import Evaluator, SearchSpace, query_random
from naonet.strategies.evolution import EvolutionConfig, regularized_evolution
from naonet.strategies.nao import NAOConfig, nao_search
from naonet.strategies.random_search import RandomSearchConfig, random_search
from naonet.strategies.registry import STRATEGIES, Strategy, get_strategy, run_strategy

__all__ = [
    "STRATEGIES",
    "EvolutionConfig",
    "Evaluator",
    "NAOConfig",
    "RandomSearchConfig",
    "SearchSpace",
    "Strategy",
    "get_strategy",
    "nao_search",
    "query_random",
    "random_search",
    "regularized_evolution",
    "run_strategy",
]
