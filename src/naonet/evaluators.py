"""What a search strategy sees: a score for each architecture it asks about, under a
query budget.

:class:`BudgetedEvaluator` wraps any measurement (a benchmark table's validation
accuracy, a trained supernet's score, training from scratch) and counts each distinct
architecture once against the budget; a repeated query is free. ``random``,
``evolution`` and ``nao`` (``naonet.strategies``) run on any space with any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from numbers import Integral

from naonet.errors import UserError


class BudgetExhausted(RuntimeError):
    """A search asked for a new architecture after spending its whole budget."""


class BudgetedEvaluator:
    """``measure(architecture)`` under a budget of distinct queries (None: unlimited)."""

    def __init__(self, measure: Callable[[Hashable], float], budget: int | None = None):
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, Integral)
                                   or budget < 1):
            raise UserError(f"the query budget must be an integer >= 1, got {budget!r}")
        self.measure = measure
        self.budget = budget
        self._scores: dict = {}  # insertion order = query order

    @property
    def queries(self) -> int:
        """Distinct architectures queried so far."""
        return len(self._scores)

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.queries

    @property
    def exhausted(self) -> bool:
        return self.budget is not None and self.queries >= self.budget

    def known(self, architecture) -> bool:
        return architecture in self._scores

    def query(self, architecture) -> float:
        """The score of ``architecture``; a repeated query is free."""
        if architecture in self._scores:
            return self._scores[architecture]
        if self.exhausted:
            raise BudgetExhausted(f"the budget of {self.budget} queries is spent")
        score = float(self.measure(architecture))
        self._scores[architecture] = score
        return score

    def history(self) -> list[tuple]:
        """(architecture, score) in the order they were first queried."""
        return list(self._scores.items())
