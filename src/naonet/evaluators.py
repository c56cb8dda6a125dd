"""What a search strategy sees: a score for each architecture it asks about, under a
query budget.

:class:`BudgetedEvaluator` wraps any measurement (a benchmark table's validation
accuracy, a trained supernet's score, training from scratch) and counts each distinct
architecture once against the budget; a repeated query is free. ``random``,
``evolution`` and ``nao`` (``naonet.strategies``) run on any space with any of them.
"""

from __future__ import annotations

import math
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
        """Distinct queries left in the budget (None: unlimited)."""
        return None if self.budget is None else self.budget - self.queries

    @property
    def exhausted(self) -> bool:
        """Whether the budget is spent (a known architecture may still be asked about)."""
        return self.budget is not None and self.queries >= self.budget

    def known(self, architecture) -> bool:
        """Whether ``architecture`` was queried already (asking again is free)."""
        return self.architecture(architecture) in self._scores

    def query(self, architecture) -> float:
        """The score of ``architecture``; a repeated query is free."""
        architecture = self.architecture(architecture)
        if architecture in self._scores:
            return self._scores[architecture]
        if self.exhausted:
            raise BudgetExhausted(f"the budget of {counted(self.budget, 'query', 'queries')} "
                                  "is spent")
        score = measured_score(self.measure(architecture), architecture)
        self._scores[architecture] = score
        return score

    def history(self) -> list[tuple]:
        """(architecture, score) in the order they were first queried."""
        return list(self._scores.items())


def measured_score(value, architecture) -> float:
    """``value``, what a measurement returned for ``architecture``, as a finite float, or a
    UserError: None or text stopped a search with a TypeError, and NaN was kept, ranking
    as nothing does (every comparison with it false), in the strategies' pools."""
    from naonet.spaces.protocol import is_boolean

    score = None
    if (not isinstance(value, (str, bytes)) and not is_boolean(value)
            and hasattr(value, "__float__")):
        try:  # a number, NumPy's included, or a tensor of one element
            score = float(value)
        except (TypeError, ValueError, RuntimeError):
            pass
    text = getattr(architecture, "to_qualified_string", lambda: str(architecture))()
    if score is None:
        raise UserError(f"the measurement of {text} returned {value!r} ({type(value).__name__})"
                        "; a score is a finite number, higher for a better architecture")
    if not math.isfinite(score):
        raise UserError(f"the measurement of {text} returned {score}; a score is a finite "
                        "number, higher for a better architecture (a training that diverged "
                        "may score it its lowest instead)")
    return score
