"""NAS-Bench-201 as a naonet search space: the space and its architectures, the
controller encoding, the benchmark's network and a weight-sharing supernet, the
benchmark table and the budgeted table evaluator."""

from naonet.nb201.encoding import NB201Encoding, dead_nodes
from naonet.nb201.evaluator import BudgetExhausted, SearchSummary, TableEvaluator, summarize
from naonet.nb201.network import (
    OPERATIONS,
    NB201Network,
    NB201NetworkConfig,
    ParameterCounter,
    build_nb201_network,
    count_parameters,
)
from naonet.nb201.space import NB201, NB201_OPS, NB201Architecture, NB201Space
from naonet.nb201.supernet import NB201Supernet
from naonet.nb201.table import (
    DEFAULT_METRIC,
    TEST_COLUMN,
    VALIDATION_METRICS,
    BenchmarkTable,
    metric_column,
)

__all__ = [
    "DEFAULT_METRIC",
    "NB201",
    "NB201_OPS",
    "OPERATIONS",
    "TEST_COLUMN",
    "VALIDATION_METRICS",
    "BenchmarkTable",
    "BudgetExhausted",
    "NB201Architecture",
    "NB201Encoding",
    "NB201Network",
    "NB201NetworkConfig",
    "NB201Space",
    "NB201Supernet",
    "ParameterCounter",
    "SearchSummary",
    "TableEvaluator",
    "build_nb201_network",
    "count_parameters",
    "dead_nodes",
    "metric_column",
    "summarize",
]
