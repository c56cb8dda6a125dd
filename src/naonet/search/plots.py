"""Pictures for people: the score distribution per search round, and an architecture's cells.

matplotlib is imported only when a picture is asked for (the ``plot`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from naonet.errors import UserError
from naonet.search.state import PoolEntry
from naonet.spaces import Architecture, Cell
from naonet.spaces.cell_space import NUM_CELL_INPUTS
from naonet.spaces.nb201 import ZERO_OP

INPUT_NAMES = ("h[k-2]", "h[k-1]")
IMAGE_SUFFIXES = (".png", ".svg", ".pdf")


def pyplot():
    """matplotlib's pyplot, drawing to files only; a UserError naming the extra to
    install where matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("pictures need matplotlib: pip install 'naonet[plot]'") from None
    return plt


def check_can_draw(without: str) -> None:
    """A UserError before a run's work, not after it, where matplotlib is absent;
    ``without``: the option that leaves the pictures out."""
    try:
        pyplot()
    except UserError as error:
        raise UserError(f"{error}, or pass {without}") from None


def check_picture_path(path: str | Path) -> Path:
    """``path`` if it names a picture file matplotlib writes, else a UserError."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"cannot write {path.name}: give a file ending in "
                        f"{', '.join(IMAGE_SUFFIXES)}")
    return path


def save_figure(figure, path: str | Path) -> None:
    """Write ``figure`` to ``path`` atomically (a viewer never sees half a picture), in
    the format its suffix names."""
    from naonet.files import atomic_write_bytes

    path = check_picture_path(path)
    atomic_write_bytes(path, lambda file: figure.savefig(file, dpi=120,
                                                         format=path.suffix[1:].lower()))


# ----------------------------------------------------------------------- score distribution
def scores_by_round(pool: Sequence[PoolEntry], rounds: int) -> list[tuple[list, list]]:
    """Per round: (scores of architectures born earlier, scores of the round's new ones)."""
    result = []
    for round_index in range(rounds):
        scored = [entry for entry in pool if round_index in entry.scores]
        result.append(([e.scores[round_index] for e in scored if e.born != round_index],
                       [e.scores[round_index] for e in scored if e.born == round_index]))
    return result


def plot_score_distribution(pool: Sequence[PoolEntry], rounds: int, path: str | Path,
                            metric: str = "accuracy") -> None:
    """Box plot of the pool's supernet scores per round, every architecture a dot
    (new architectures of the round in orange); ``metric`` is the scores' (the axis
    names it)."""
    import numpy as np

    from naonet.supernet import SCORE_METRICS

    plt = pyplot()
    per_round = scores_by_round(pool, rounds)
    figure, axes = plt.subplots(figsize=(max(4.0, 1.2 * rounds + 2.5), 4))
    positions = list(range(1, rounds + 1))
    axes.boxplot([old + new for old, new in per_round], positions=positions, widths=0.5,
                 showfliers=False)
    jitter = np.random.default_rng(0)  # fixed: the picture does not change between rewrites
    for position, (old, new) in zip(positions, per_round):
        for values, colour, label in ((old, "tab:blue", "earlier rounds"),
                                      (new, "tab:orange", "new this round")):
            offsets = jitter.uniform(-0.18, 0.18, len(values))
            axes.scatter(position + offsets, values, s=6, alpha=0.5, color=colour,
                         label=label if position == 1 or label == "earlier rounds" else None)
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axes.legend(unique.values(), unique.keys(), loc="lower right", fontsize=8)
    axes.set_xticks(positions)
    axes.set_xlabel("round")
    axes.set_ylabel(f"supernet score: {SCORE_METRICS[metric]}")
    axes.set_title("architecture scores per round")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


# ----------------------------------------------------------------------- cells
COLUMN_WIDTH = 2.0  # data units between node columns (rows are 1 unit apart)


def _layout(cell: Cell) -> dict[int | str, tuple[float, float]]:
    """(x, y) of every state and of the output: the cell inputs on the left, one column
    per node in order, nodes alternately above and below the middle line."""
    places: dict[int | str, tuple[float, float]] = {0: (0.0, 1.3), 1: (0.0, -1.3)}
    for index in range(len(cell.nodes)):
        places[index + NUM_CELL_INPUTS] = (COLUMN_WIDTH * (index + 1),
                                           0.9 if index % 2 == 0 else -0.9)
    places["output"] = (COLUMN_WIDTH * (len(cell.nodes) + 1), 0.0)
    return places


def _draw_cell(axes, architecture: Architecture, cell: Cell, title: str) -> None:
    op_names = architecture.space.op_names
    colours = {name: f"C{index % 10}" for index, name in enumerate(op_names)}
    places = _layout(cell)
    for node_index, node in enumerate(cell.nodes):
        target = places[node_index + NUM_CELL_INPUTS]
        for source, op, bend in ((node.input_a, node.op_a, 0.2),
                                 (node.input_b, node.op_b, -0.2)):
            _edge(axes, places[source], target, colours[op_names[op]], bend, op_names[op])
    for state in cell.loose_ends():
        _edge(axes, places[state], places["output"], "grey", 0.0, None, dashed=True)
    box = dict(boxstyle="round,pad=0.3", linewidth=1)
    for state, (x, y) in places.items():
        if state == "output":
            label, face = "concat", "#fde9c9"
        elif state < NUM_CELL_INPUTS:
            label, face = INPUT_NAMES[state], "#d8e8f8"
        else:
            label, face = str(state), "#e8f4e0"
        axes.text(x, y, label, ha="center", va="center", fontsize=10, zorder=3,
                  bbox={**box, "facecolor": face})
    axes.set_xlim(-0.8, COLUMN_WIDTH * (len(cell.nodes) + 1) + 0.8)
    axes.set_ylim(-2.0, 2.4)
    axes.set_aspect("equal")  # arc3 bends in display space: label positions need 1:1
    axes.set_title(title)
    axes.axis("off")


def _edge(axes, start, end, colour, bend, label, dashed=False) -> None:
    axes.annotate("", xy=end, xytext=start, zorder=1, arrowprops=dict(
        arrowstyle="-|>", color=colour, linewidth=1.2, shrinkA=12, shrinkB=12,
        linestyle="--" if dashed else "-", connectionstyle=f"arc3,rad={bend}"))
    if label:
        x, y = _along_arc(start, end, bend, 0.62)  # nearer the node: labels fan out less
        axes.text(x, y, label, fontsize=7, color=colour, ha="center", va="center",
                  zorder=2, bbox=dict(boxstyle="round,pad=0.1", facecolor="white",
                                      edgecolor="none", alpha=0.85))


def _along_arc(start, end, bend: float, t: float) -> tuple[float, float]:
    """The point at ``t`` of matplotlib's ``arc3`` curve (a quadratic Bezier)."""
    (x0, y0), (x1, y1) = start, end
    cx, cy = (x0 + x1) / 2 + bend * (y1 - y0), (y0 + y1) / 2 - bend * (x1 - x0)
    a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t ** 2
    return a * x0 + b * cx + c * x1, a * y0 + b * cy + c * y1


def draw_architecture(architecture: Architecture, path: str | Path,
                      title: str | None = None) -> None:
    """Both cells of ``architecture`` as graphs, one above the other, into a PNG, SVG
    or PDF file."""
    path = check_picture_path(path)  # before the drawing, and outside the title's try
    plt = pyplot()
    width = 1.9 * (architecture.space.num_nodes + 2)
    figure, axes = plt.subplots(2, 1, figsize=(width, width * 0.62))
    _draw_cell(axes[0], architecture, architecture.normal, "normal cell")
    _draw_cell(axes[1], architecture, architecture.reduction, "reduction cell")
    _save_titled(plt, figure, title or architecture.to_qualified_string(), path)


def _save_titled(plt, figure, title: str, path: Path) -> None:
    """Title, lay out and save a drawing; a title matplotlib cannot typeset is a
    UserError; the figure is closed in any case."""
    figure.suptitle(title, fontsize=8)
    try:
        figure.tight_layout()  # lays the title out: where bad $...$ math fails
        save_figure(figure, path)
    except UserError:
        raise
    except ValueError as error:  # matplotlib's mathtext cannot typeset the title
        raise UserError(f"cannot typeset the title ({mathtext_problem(error)}); pass a "
                        "--title with valid $...$ math, or escape $ as \\$") from None
    finally:
        plt.close(figure)


def draw_benchmark_cell(architecture, path: str | Path, title: str | None = None) -> None:
    """A NAS-Bench-201 cell as a graph (nodes in a row, every edge but ``none`` drawn
    with its op) into a PNG, SVG or PDF file."""
    path = check_picture_path(path)
    plt = pyplot()
    space = architecture.space
    op_names = space.op_names
    colours = {name: f"C{index % 10}" for index, name in enumerate(op_names)}
    spacing = 1.6 * COLUMN_WIDTH  # room for an op's name between neighbours
    places = {node: (spacing * node, 0.0) for node in range(space.num_nodes)}
    figure, axes = plt.subplots(figsize=(2.6 * space.num_nodes, 3.2))
    for (source, target), op in zip(space.edges, architecture.op_names):
        if op == ZERO_OP:  # no connection: nothing flows along it
            continue
        span = target - source  # neighbours straight, longer edges arc above, the longest below
        bend = 0.0 if span == 1 else (-0.45 if span == 2 else 0.35)
        _edge(axes, places[source], places[target], colours[op], bend, op)
    box = dict(boxstyle="round,pad=0.3", linewidth=1)
    last = space.num_nodes - 1
    for node, (x, y) in places.items():
        label, face = (("input", "#d8e8f8") if node == 0 else
                       ("output", "#fde9c9") if node == last else (str(node), "#e8f4e0"))
        axes.text(x, y, label, ha="center", va="center", fontsize=10, zorder=3,
                  bbox={**box, "facecolor": face})
    axes.set_xlim(-0.9, spacing * last + 0.9)
    axes.set_ylim(-1.9, 1.9)
    axes.set_aspect("equal")  # arc3 bends in display space: label positions need 1:1
    axes.axis("off")
    _save_titled(plt, figure, title or architecture.to_qualified_string(), path)


def mathtext_problem(error: ValueError) -> str:
    """The last line of a mathtext error (its first lines repeat the text)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else "invalid math"


# ----------------------------------------------------------------------- size against score
def plot_pareto(records: Sequence[dict], front: Sequence[dict], final: Sequence[str],
                path: str | Path, cost: str = "final_parameters") -> None:
    """Every scored architecture's supernet score against the final network's ``cost``,
    the non-dominated front highlighted and arch_pool.final's architectures marked."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    scored = [r for r in records if r.get("supernet_score") is not None and cost in r]
    axes.scatter([r[cost] for r in scored], [r["supernet_score"] for r in scored], s=8,
                 alpha=0.4, color="tab:blue", label="evaluated")
    ordered = sorted(front, key=lambda r: r[cost])
    axes.plot([r[cost] for r in ordered], [r["supernet_score"] for r in ordered], "-o",
              color="tab:orange", markersize=4, label="non-dominated")
    chosen = [r for r in scored if r["arch"] in set(final)]
    axes.scatter([r[cost] for r in chosen], [r["supernet_score"] for r in chosen], s=60,
                 marker="*", color="tab:red", label="arch_pool.final", zorder=3)
    axes.set_xlabel(cost.replace("final_", "final network ").replace("_", " "))
    axes.set_ylabel("supernet score")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
