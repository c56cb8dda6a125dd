"""Ground truth for reporting a search: look the pool up in a benchmark table.

Given ``--reference table:CSV`` (NAS-Bench-201), the search records after every round
how well the supernet's scores rank the pool (Kendall's tau against the table's
validation accuracy) and what the current best architectures really are: their test
accuracy and their rank among every architecture of the table. These lookups are for
people reading the results; nothing here is ever fed back into the search.
Accuracies are fractions, as everywhere in the library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from naonet.analysis.correlation import kendall_tau
from naonet.errors import UserError
from naonet.nb201 import DEFAULT_METRIC, TEST_COLUMN, BenchmarkTable, metric_column
from naonet.nb201.table import TABLE_PREFIX


def table_path(text: str, flag: str = "--reference") -> str:
    """The PATH of a ``table:PATH`` value (of ``--reference`` or ``--evaluator``)."""
    if not text.startswith(TABLE_PREFIX) or len(text) == len(TABLE_PREFIX):
        raise UserError(f"{flag} {text!r} is not a table reference; write {TABLE_PREFIX}PATH "
                        "with PATH the benchmark CSV")
    return text[len(TABLE_PREFIX):]


@dataclass
class TrueAccuracy:
    """What the table says of one architecture."""

    test_accuracy: float  # a fraction
    # 1 + the cells with a higher test accuracy: 1 = the best of the whole table, and
    # cells of equal accuracy share the best rank of their tie (competition ranking)
    rank: int
    of: int  # architectures in the table


class ReferenceTable:
    """A benchmark table as the ground truth of a search's reports."""

    def __init__(self, table: BenchmarkTable, metric: str = DEFAULT_METRIC):
        self.table = table
        self.metric_column = metric_column(metric)
        self._sorted_test = np.sort(table.column(TEST_COLUMN))  # ascending

    @classmethod
    def load(cls, reference: str, space, every_cell: bool = True) -> ReferenceTable:
        """The table of ``--reference table:PATH``; ``every_cell`` as for
        :meth:`BenchmarkTable.load` (a search's pool may hold any cell)."""
        table = BenchmarkTable.load(table_path(reference), every_cell=every_cell)
        if table.space != space:
            raise UserError(f"--reference is a table of the {table.space.name!r} space, but "
                            f"the architectures are of the {space.name!r} space; pass --space "
                            f"{table.space.name}")
        return cls(table)

    def true_accuracy(self, architecture) -> TrueAccuracy:
        """The table's test accuracy of ``architecture`` and its rank among every cell
        (1: the best; tied cells share the best rank of their tie)."""
        test = self.table.test_accuracy(architecture)
        better = len(self._sorted_test) - int(np.searchsorted(self._sorted_test, test,
                                                              side="right"))
        return TrueAccuracy(test, better + 1, len(self._sorted_test))

    def round_report(self, architectures: list, scores: list[float]) -> dict:
        """Kendall's tau of the scores against the table, and the truth of the best."""
        validation = [self.table.value(arch, self.metric_column) for arch in architectures]
        best = self.true_accuracy(architectures[int(np.argmax(scores))])
        return {"kendall_tau": kendall_tau(scores, validation) if len(scores) > 1 else None,
                "best_test_accuracy": best.test_accuracy, "best_rank": best.rank}
