"""NAS-Bench-201 the benchmark: its table of trained results and the budgeted table
evaluator. The space itself is :mod:`naonet.spaces.nb201` (registered as ``nb201``),
its network :mod:`naonet.models.nb201` and its supernet :mod:`naonet.supernet.nb201`."""

from naonet.nb201.evaluator import BudgetExhausted, SearchSummary, TableEvaluator, summarize
from naonet.nb201.table import (
    DEFAULT_METRIC,
    TEST_COLUMN,
    VALIDATION_METRICS,
    BenchmarkTable,
    metric_column,
    metric_flag,
)

__all__ = [
    "DEFAULT_METRIC",
    "TEST_COLUMN",
    "VALIDATION_METRICS",
    "BenchmarkTable",
    "BudgetExhausted",
    "SearchSummary",
    "TableEvaluator",
    "metric_column",
    "metric_flag",
    "summarize",
]
