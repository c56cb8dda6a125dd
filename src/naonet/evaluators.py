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
from naonet.text import counted


class BudgetExhausted(RuntimeError):
    """A search asked for a new architecture after spending its whole budget."""


class BudgetedEvaluator:
    """``measure(architecture)`` under a budget of distinct queries (None: unlimited).

    An architecture may be asked about as a value or in a text form: text is read into
    its value first, so both count as one query and ``measure`` and ``history`` see the
    value. With ``space`` every query is read in it (another space's architecture is
    refused); without, text that names its space (``to_qualified_string()``, or
    NAS-Bench-201's own form) is read into its value and other text is left as it is
    (a ``measure`` of your own may key on it)."""

    described_as = "the evaluator"  # in the errors that refuse another space's architecture

    def __init__(self, measure: Callable[[Hashable], float], budget: int | None = None,
                 space=None):
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, Integral)
                                   or budget < 1):
            raise UserError(f"the query budget must be an integer >= 1, got {budget!r}")
        self.measure = measure
        self.budget = budget
        self.space = space
        self._scores: dict = {}  # insertion order = query order

    def architecture(self, value) -> Hashable:
        """``value`` as the architecture the evaluator counts (text read into its value)."""
        if self.space is not None:
            return self.space.as_architecture(value, self.described_as)
        if isinstance(value, str):
            from naonet.spaces.protocol import named_space, parse_architecture

            if named_space(value)[0] is not None:
                return parse_architecture(value)
        return value

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
        return self.architecture(architecture) in self._scores

    def query(self, architecture) -> float:
        """The score of ``architecture``; a repeated query is free."""
        architecture = self.architecture(architecture)
        if architecture in self._scores:
            return self._scores[architecture]
        if self.exhausted:
            raise BudgetExhausted(f"the budget of {counted(self.budget, 'query', 'queries')} "
                                  "is spent")
        score = float(self.measure(architecture))
        self._scores[architecture] = score
        return score

    def history(self) -> list[tuple]:
        """(architecture, score) in the order they were first queried."""
        return list(self._scores.items())
