"""Recipes: search a benchmark table with one strategy, or compare strategies over seeds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from naonet.nb201 import (
    DEFAULT_METRIC,
    BenchmarkTable,
    SearchSummary,
    TableEvaluator,
    summarize,
)
from naonet.strategies.registry import run_strategy


def search_table(table: BenchmarkTable, strategy: str, budget: int, seed: int,
                 metric: str = DEFAULT_METRIC, config=None) -> SearchSummary:
    """One search of ``table`` within ``budget`` queries; the summary adds test accuracy."""
    evaluator = TableEvaluator(table, metric, budget)
    run_strategy(strategy, table.space, evaluator, seed, config)
    return summarize(evaluator, table)


@dataclass
class StrategyRuns:
    """Every seed's search summary of one strategy, and the time they took."""

    strategy: str
    summaries: list[SearchSummary] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def test_accuracies(self) -> list[float]:
        return [summary.test_accuracy for summary in self.summaries]

    def mean(self) -> float:
        return statistics.fmean(self.test_accuracies)

    def std(self) -> float:
        """Population standard deviation over seeds (0 for one seed)."""
        return statistics.pstdev(self.test_accuracies)

    def to_dict(self) -> dict:
        return {"strategy": self.strategy, "mean_test_accuracy": self.mean(),
                "std_test_accuracy": self.std(), "seconds": self.seconds,
                "runs": [summary.to_dict() for summary in self.summaries]}


def benchmark_strategies(table: BenchmarkTable, strategies: Sequence[str], seeds: Sequence[int],
                         budget: int, metric: str = DEFAULT_METRIC,
                         configs: dict | None = None,
                         on_run: Callable[[str, int, SearchSummary], None] | None = None
                         ) -> list[StrategyRuns]:
    """Search with every strategy and seed; ``on_run`` is called after each search."""
    configs = configs or {}
    results = []
    for strategy in strategies:
        runs = StrategyRuns(strategy)
        start = time.perf_counter()
        for seed in seeds:
            summary = search_table(table, strategy, budget, seed, metric, configs.get(strategy))
            runs.summaries.append(summary)
            if on_run is not None:
                on_run(strategy, seed, summary)
        runs.seconds = time.perf_counter() - start
        results.append(runs)
    return results
