"""Plots of search progress (matplotlib, imported only when a plot is asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_best_so_far(curves: dict[str, Sequence[Sequence[float]]], path: str | Path,
                     ylabel: str = "test accuracy of the best-by-validation (%)",
                     reference: float | None = None, title: str = "") -> None:
    """Mean (line) and spread (band, one std) over seeds of each strategy's curves.

    ``curves[name]`` holds one curve per seed: the accuracy (a fraction) after each
    query; ``reference`` (a fraction) is drawn as a line. The axis shows percents.
    """
    from naonet.search.plots import pyplot, save_figure

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    early_means = []
    for name, runs in curves.items():
        values = 100 * np.asarray(runs, dtype=np.float64)  # [seeds, queries], percent
        queries = np.arange(1, values.shape[1] + 1)
        mean, std = values.mean(axis=0), values.std(axis=0)
        axes.plot(queries, mean, label=name)
        axes.fill_between(queries, mean - std, mean + std, alpha=0.2)
        early_means.append(mean[len(mean) // 5])
    if reference is not None:
        axes.axhline(100 * reference, color="grey", linestyle="--", linewidth=1,
                     label="best possible")
    axes.set_xlabel("queries")
    axes.set_ylabel(ylabel)
    # The first queries are far below the rest; start the axis where the curves have
    # climbed (a fifth of the budget) so the differences between strategies show.
    axes.set_ylim(bottom=max(min(early_means) - 1.0, 0.0))
    if title:  # wrapped: a budget's limits made it wider than the figure
        axes.set_title(title, wrap=True, fontsize="medium")
    axes.legend()
    figure.tight_layout()
    try:
        save_figure(figure, path)
    finally:
        plt.close(figure)
