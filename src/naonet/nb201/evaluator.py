"""The table evaluator: a search's only window onto a benchmark table.

It answers validation-metric queries, counts each distinct architecture once against a
query budget and records the order of first queries. Test accuracy is not reachable
through it: :func:`summarize` looks it up for the report after the search.
"""

from __future__ import annotations

from dataclasses import dataclass

from naonet.errors import UserError
from naonet.evaluators import BudgetedEvaluator, BudgetExhausted  # noqa: F401 - re-exported
from naonet.nb201.table import DEFAULT_METRIC, BenchmarkTable, metric_column, metric_name
from naonet.spaces.nb201 import NB201Architecture


class TableEvaluator(BudgetedEvaluator):
    """Validation accuracy of architectures from a table, under a query budget."""

    described_as = "the table evaluator"

    def __init__(self, table: BenchmarkTable, metric: str = DEFAULT_METRIC,
                 budget: int | None = None):
        values, row = table.column(metric_column(metric)), table.row
        super().__init__(lambda architecture: values[row(architecture)], budget, table.space)
        self.metric = metric_name(metric)  # one form, whichever was given


@dataclass(frozen=True)
class SearchSummary:
    """The outcome of one search: the best architecture by validation and its test score."""

    best: NB201Architecture
    best_index: int
    best_validation: float
    test_accuracy: float
    queries: int
    # After each query: the best validation so far, and the test accuracy of that one.
    validation_curve: tuple[float, ...]
    test_curve: tuple[float, ...]
    # The benchmark index of each queried architecture, in query order; None where
    # unknown (a summary written before naonet of 2026-12-06 kept them).
    queried: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        return {"best": self.best.to_string(), "best_index": self.best_index,
                "best_validation": self.best_validation, "test_accuracy": self.test_accuracy,
                "queries": self.queries, "validation_curve": list(self.validation_curve),
                "test_curve": list(self.test_curve),
                "queried": None if self.queried is None else list(self.queried)}

    @classmethod
    def from_dict(cls, values: dict, space) -> SearchSummary:
        """A summary :meth:`to_dict` wrote, its cell read in ``space``."""
        return cls(space.parse(values["best"]), int(values["best_index"]),
                   float(values["best_validation"]), float(values["test_accuracy"]),
                   int(values["queries"]), tuple(map(float, values["validation_curve"])),
                   tuple(map(float, values["test_curve"])),
                   _indices(values.get("queried")))


def _indices(values) -> tuple[int, ...] | None:
    """A saved list of benchmark indices; None where none was saved."""
    return None if values is None else tuple(map(int, values))


def summarize(evaluator: TableEvaluator, table: BenchmarkTable) -> SearchSummary:
    """Best-by-validation architecture of a finished search and its test accuracy."""
    history = evaluator.history()
    if not history:
        raise UserError("the search queried no architecture: give it a query budget "
                        "(budget) of at least 1")
    best, best_score = history[0]
    validation_curve, test_curve = [], []
    for architecture, score in history:
        if score > best_score:
            best, best_score = architecture, score
        validation_curve.append(best_score)
        test_curve.append(table.test_accuracy(best))
    return SearchSummary(best, table.index(best), best_score, table.test_accuracy(best),
                         len(history), tuple(validation_curve), tuple(test_curve),
                         tuple(table.index(architecture) for architecture, _ in history))
