"""Recipes: search a benchmark table with one strategy, or compare strategies over seeds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from naonet import options
from naonet.constraints import Budget, CostMeter, FeasibleSpace
from naonet.errors import UserError
from naonet.nb201 import (
    DEFAULT_METRIC,
    BenchmarkTable,
    SearchSummary,
    TableEvaluator,
    summarize,
)
from naonet.nb201.table import TABLE_SPACE, TEST_COLUMN, metric_column
from naonet.strategies.nao import NAOConfig, check_query_budget
from naonet.strategies.registry import STRATEGIES, run_strategy


def search_table(table: BenchmarkTable, strategy: str, budget: int, seed: int,
                 metric: str = DEFAULT_METRIC, config=None,
                 limits: Budget | None = None, device: str = "cpu",
                 space=None) -> SearchSummary:
    """One search of ``table`` within ``budget`` queries (and, given ``limits``, only
    over architectures within them, latency timed on ``device``); the summary adds
    test accuracy. ``space``: ``limited_space(table, limits, device)`` made already, for
    many searches to share (its count of the architectures within the limits, its
    timings)."""
    evaluator = TableEvaluator(table, metric, budget)
    if space is None:
        space = limited_space(table, limits, device)
    run_strategy(strategy, space, evaluator, seed, config)
    return summarize(evaluator, table)


def limited_space(table: BenchmarkTable, limits: Budget | None, device: str = "cpu"):
    """The table's space, or the part of it within ``limits``."""
    if limits is None or not limits.active:
        return table.space
    return FeasibleSpace(table.space, CostMeter(table.space, limits, device=device))


def feasible_optimum(table: BenchmarkTable, limits: Budget, column: str = TEST_COLUMN
                     ) -> tuple[int, float] | None:
    """(benchmark index, test accuracy) of the best cell by ``column`` (test accuracy: the
    optimum; a validation column: where a perfect search by it ends) among the table's
    architectures within the parameter and multiply-add limits, None when none is within
    them. A latency limit is not applied (timing all 15,625 networks is not worth a report
    line): under one, the test optimum is an upper bound of what a search could find."""
    meter = CostMeter(table.space, limits)
    ranked, tests = table.column(column), table.column(TEST_COLUMN)
    rows = [row for row, architecture in enumerate(table.architectures)
            if limits.sizes_allow(meter, architecture)]
    if not rows:
        return None
    best = max(rows, key=lambda row: ranked[row])
    return int(table.indices[best]), float(tests[best])


def best_possible(table: BenchmarkTable, limits: Budget, metric: str
                  ) -> tuple[float | None, str]:
    """What a search within ``limits`` could at best end with, and the words that report
    it: the test accuracy of the table's best cell by ``metric`` (where a perfect search
    by validation ends), among the cells within parameter and multiply-add limits where
    there are such (:func:`feasible_optimum`). Under a latency limit it is not known (not
    every network is timed): None, and the words give an upper bound, the best test
    accuracy within the other limits or in the table."""
    sized = limits.max_params is not None or limits.max_macs is not None
    if limits.max_latency_ms is not None:
        optimum = feasible_optimum(table, limits) if sized else None
        bound = optimum[1] if optimum is not None else float(max(table.column(TEST_COLUMN)))
        where = "within the other limits alone" if sized else "in the whole table"
        return None, ("best possible under the latency limit not known (not every network "
                      f"is timed; at most {100 * bound:.2f} %, the best test accuracy {where})")
    optimum = feasible_optimum(table, limits, metric_column(metric)) if sized else None
    if optimum is not None:
        return optimum[1], f"best possible {100 * optimum[1]:.2f} % (index {optimum[0]})"
    best = table.test_accuracy(table.best(metric_column(metric)))
    return best, f"best possible {100 * best:.2f} %"


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything ``nao bench-search`` ran: saved with its results."""

    table: str  # table:PATH of the benchmark CSV
    strategies: tuple[str, ...]
    space: str = TABLE_SPACE
    budget: int = 100
    first_seed: int = 0
    seeds: int = 20
    metric: str = DEFAULT_METRIC
    strategy_configs: dict = field(default_factory=dict)  # strategy -> its config
    limits: Budget = field(default_factory=Budget)  # parameters / multiply-adds / latency
    device: str = "cpu"  # where latency is timed

    def __post_init__(self) -> None:
        options.check_field_types(self)
        options.check_names(self.strategies, tuple(STRATEGIES), "--strategies")
        if self.budget < 1:
            raise UserError(f"--budget must be >= 1, got {self.budget}")
        if not 1 <= self.seeds <= options.SEED_LIMIT:  # else the seed range is empty
            raise UserError(f"--seeds must be from 1 to {options.SEED_LIMIT:,}, got "
                            f"{self.seeds:,}")
        options.check_seed(self.first_seed, "--first-seed", count=self.seeds)

    @property
    def seed_range(self) -> range:
        return range(self.first_seed, self.first_seed + self.seeds)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["strategies"] = list(self.strategies)
        values["strategy_configs"] = {name: config.to_dict() if hasattr(config, "to_dict")
                                      else asdict(config)
                                      for name, config in self.strategy_configs.items()}
        return values


@dataclass
class StrategyRuns:
    """Every seed's search summary of one strategy, and the time they took."""

    strategy: str
    summaries: list[SearchSummary] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)  # each summary's seed
    seconds: float = 0.0  # all seeds' searches together (a resumed run's included)

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
                "runs": [{"seed": seed, **summary.to_dict()}
                         for seed, summary in zip(self.seeds, self.summaries, strict=True)]}


def benchmark_strategies(table: BenchmarkTable, strategies: Sequence[str], seeds: Sequence[int],
                         budget: int, metric: str = DEFAULT_METRIC,
                         configs: dict | None = None,
                         on_run: Callable[[str, int, SearchSummary, float], None]
                         | None = None,
                         limits: Budget | None = None, device: str = "cpu",
                         finished: Mapping[tuple[str, int], tuple[SearchSummary, float]]
                         | None = None) -> list[StrategyRuns]:
    """Search with every strategy and seed; ``on_run(strategy, seed, summary, seconds)``
    is called after each search. ``finished`` holds the (summary, seconds) of searches
    an earlier, stopped run made, by (strategy, seed): they are taken, not repeated (a
    search is a function of its seed). Latency (when ``limits`` has a latency limit) is
    timed on ``device``."""
    configs = configs or {}
    if "nao" in strategies:  # before any strategy spends its time
        check_query_budget(budget, configs.get("nao") or NAOConfig())
    space = limited_space(table, limits, device)  # one for every search: counted once
    finished = finished or {}
    results = []
    for strategy in strategies:
        runs = StrategyRuns(strategy)
        for seed in seeds:
            if (strategy, seed) in finished:
                summary, seconds = finished[strategy, seed]
            else:
                start = time.perf_counter()
                summary = search_table(table, strategy, budget, seed, metric,
                                       configs.get(strategy), space=space)
                seconds = time.perf_counter() - start
                if on_run is not None:
                    on_run(strategy, seed, summary, seconds)
            runs.summaries.append(summary)
            runs.seeds.append(seed)
            runs.seconds += seconds
        results.append(runs)
    return results
