"""Ranking agreement between two scorings of the same architectures.

All functions take two equally long sequences, ``scores`` (for example a supernet's or a
predictor's) and ``reference`` (for example a benchmark's accuracies). Kendall's tau is
the tau-b variant and Spearman's rho uses average ranks for ties, so both agree with
``scipy.stats.kendalltau`` and ``scipy.stats.spearmanr``; a constant input, or fewer than
two architectures, gives nan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from naonet.errors import UserError


def _pair(scores: Sequence[float], reference: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(scores, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise UserError(f"need two equally long lists of scores, got {x.shape} and {y.shape}")
    for name, values in (("scores", x), ("reference", y)):
        if not np.isfinite(values).all():
            where = int(np.flatnonzero(~np.isfinite(values))[0])
            raise UserError(f"the {name} list holds a value that is no number ({values[where]} at "
                            f"position {where}); drop the architectures without a score")
    return x, y


def _tied_pairs(values: np.ndarray) -> float:
    """Pairs with equal values: sum of t (t - 1) / 2 over groups of t equal values."""
    _, counts = np.unique(values, return_counts=True, axis=0)
    return float(np.sum(counts * (counts - 1) / 2))


def _strict_inversions(values: np.ndarray) -> float:
    """Pairs i < j with values[i] > values[j], in O(n log n) with a Fenwick tree."""
    if values.size == 0:
        return 0.0
    ranks = np.unique(values, return_inverse=True)[1].reshape(-1) + 1  # 1-based
    tree = [0] * (int(ranks.max()) + 1)
    inversions = 0
    for seen, rank in enumerate(ranks.tolist()):
        at_most, index = 0, rank  # earlier values <= this one
        while index > 0:
            at_most += tree[index]
            index -= index & -index
        inversions += seen - at_most
        index = rank
        while index < len(tree):
            tree[index] += 1
            index += index & -index
    return float(inversions)


def _pair_sums(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Counts over pairs i < j: concordant, discordant, tied in x, tied in y, tied in both."""
    total = len(x) * (len(x) - 1) / 2
    order = np.lexsort((y, x))  # by x, then y: pairs tied in x are never inversions in y
    discordant = _strict_inversions(y[order])
    tied_x, tied_y = _tied_pairs(x), _tied_pairs(y)
    tied_both = _tied_pairs(np.stack([x, y], axis=1))
    concordant = total - tied_x - tied_y + tied_both - discordant
    return {"total": total, "concordant": concordant, "discordant": discordant,
            "tied_x": tied_x, "tied_y": tied_y, "tied_both": tied_both}


def kendall_tau(scores: Sequence[float], reference: Sequence[float]) -> float:
    """Kendall's tau-b."""
    x, y = _pair(scores, reference)
    return _tau_b(_pair_sums(x, y))


def _tau_b(sums: dict[str, float]) -> float:
    denominator = math.sqrt((sums["total"] - sums["tied_x"]) * (sums["total"] - sums["tied_y"]))
    if denominator == 0:
        return math.nan
    return (sums["concordant"] - sums["discordant"]) / denominator


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their positions."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of every run of equal values, and the mean rank over each run.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_rank = (starts + ends + 1) / 2.0  # mean of positions start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def spearman_rho(scores: Sequence[float], reference: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of average ranks."""
    x, y = _pair(scores, reference)
    if len(x) < 2:  # no pair to order
        return math.nan
    rank_x, rank_y = average_ranks(x), average_ranks(y)
    rank_x, rank_y = rank_x - rank_x.mean(), rank_y - rank_y.mean()
    denominator = math.sqrt(float(np.sum(rank_x ** 2) * np.sum(rank_y ** 2)))
    return float(np.sum(rank_x * rank_y)) / denominator if denominator > 0 else math.nan


def pairwise_accuracy(scores: Sequence[float], reference: Sequence[float]) -> float:
    """Of the pairs the reference orders (not tied), the fraction the scores order alike;
    a pair tied in the scores counts one half."""
    x, y = _pair(scores, reference)
    return _pairwise(_pair_sums(x, y))


def _pairwise(sums: dict[str, float]) -> float:
    ordered = sums["total"] - sums["tied_y"]  # pairs the reference orders
    if ordered == 0:
        return math.nan
    # A pair tied in the scores but not in the reference is a coin flip: half right.
    tied_in_scores_only = sums["tied_x"] - sums["tied_both"]
    return (sums["concordant"] + 0.5 * tied_in_scores_only) / ordered


def precision_at_top(scores: Sequence[float], reference: Sequence[float], k: int) -> float:
    """Fraction of the reference's top ``k`` that are also in the scores' top ``k``.

    Ties at a cut are a random choice among the tied (as :func:`pairwise_accuracy` counts
    a tied pair one half): the expected fraction over those choices, so the order the
    architectures are listed in never matters, and a constant scoring gets ``k / n``,
    what a random pick gets.
    """
    x, y = _pair(scores, reference)
    if not 1 <= k <= len(x):
        raise UserError(f"top-k needs 1 <= k <= {len(x)} (the number of architectures), "
                        f"got {k}")
    # the two scorings' tie-breaks are independent: chances of being in both multiply
    return float(np.dot(_chance_in_top(x, k), _chance_in_top(y, k))) / k


def _chance_in_top(values: np.ndarray, k: int) -> np.ndarray:
    """Each architecture's chance of being among the ``k`` highest ``values`` when the
    ties at the cut are broken at random: 1 above the cut, 0 below, and at it the places
    left over shared by the tied."""
    cut = np.partition(values, len(values) - k)[len(values) - k]  # the k-th highest
    above, at = values > cut, values == cut
    chance = above.astype(np.float64)
    chance[at] = (k - int(above.sum())) / int(at.sum())
    return chance


@dataclass(frozen=True)
class CorrelationReport:
    """Every agreement statistic of two scorings."""

    count: int
    kendall_tau: float
    spearman_rho: float
    pairwise_accuracy: float
    precision_at_top: dict[int, float]

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable report, one statistic per line."""
        lines = [f"architectures      {self.count}",
                 f"kendall tau        {self.kendall_tau:.4f}",
                 f"spearman rho       {self.spearman_rho:.4f}",
                 f"pairwise accuracy  {self.pairwise_accuracy:.4f}"]
        lines += [f"precision@top-{k:<4} {value:.4f}" for k, value in self.precision_at_top.items()]
        return lines


def correlate(scores: Sequence[float], reference: Sequence[float],
              top_k: Sequence[int] = (5, 10)) -> CorrelationReport:
    """All statistics; top-k values larger than the sample are skipped."""
    x, y = _pair(scores, reference)
    sums = _pair_sums(x, y)  # shared by tau and pairwise accuracy
    count = len(x)
    return CorrelationReport(
        count, _tau_b(sums), spearman_rho(x, y), _pairwise(sums),
        {k: precision_at_top(scores, reference, k) for k in top_k if k <= count})
