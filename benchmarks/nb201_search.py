"""Summarise one-shot NB201 searches run with ``--reference table:CSV``: per run, the
true test accuracy of what it found, of the supernet's own first place, and of the best
cell it scored, with the supernet's tau per round; mean and std per strategy (and per
recipe, where the runs differ in a setting of ``RECIPE_KEYS``).

    python benchmarks/nb201_search.py RUN_DIR [RUN_DIR ...]
    python benchmarks/nb201_search.py --by-edge 3 RUN_DIR [RUN_DIR ...]

With ``--by-edge E`` it prints, per run and per op on edge E (its position in the cell
string; 3 is edge 0 -> 3), how many cells the search scored, the supernet's Kendall tau
against the table within that group, and the true accuracy of the group's first by
supernet score and of its best cell.

Each RUN_DIR is the ``--output`` of one ``nao search --space nb201 --reference ...``
run; benchmarks/nb201_search.sh makes them. The truth comes from the files the search
wrote (``true_test_accuracy`` lines), never from the search's decisions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml
from nb201_ranking import mean_std  # benchmarks/ is the script's folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from naonet.search.loop import TIMINGS_NAME  # noqa: E402
from naonet.search.outputs import FINAL_POOL, POOL_JSON, ROUNDS_LOG  # noqa: E402

# settings whose values, where the runs differ in them, name a run's group
RECIPE_KEYS = ("sampling", "supernet_pool", "channels", "layers", "supernet_epochs",
               "few_shot_split", "few_shot_after", "rerank_turns", "rerank_top",
               "rerank_epochs", "rerank_channels", "rerank_layers")


def read_run(folder: Path) -> dict | None:
    """The figures of one finished run folder (None, with a message, if unfinished)."""
    final_path, pool_path = folder / f"{FINAL_POOL}.json", folder / POOL_JSON
    if not final_path.is_file() or not pool_path.is_file():
        print(f"skipping {folder}: no arch_pool.final.json (not started?)", file=sys.stderr)
        return None
    final, pool = json.loads(final_path.read_text()), json.loads(pool_path.read_text())
    if not final.get("complete"):
        print(f"skipping {folder}: the search has not finished", file=sys.stderr)
        return None
    if "true_test_accuracy" not in final["architectures"][0]:
        print(f"skipping {folder}: run without --reference table:CSV", file=sys.stderr)
        return None
    config = yaml.safe_load((folder / "config.yaml").read_text())
    rounds = [json.loads(line) for line in (folder / ROUNDS_LOG).read_text().splitlines()]
    timings = folder / TIMINGS_NAME
    seconds = sum(json.loads(timings.read_text())["seconds"].values()) if timings.is_file() \
        else float("nan")
    architectures = pool["architectures"]
    by_score = max(architectures, key=lambda record: record["supernet_score"])
    return {
        "folder": folder.name, "strategy": config.get("strategy", "nao"),
        "recipe": {key: config.get(key) for key in RECIPE_KEYS},
        "seed": config.get("seed"),
        "found": 100 * final["architectures"][0]["true_test_accuracy"],
        "found_rank": final["architectures"][0]["true_rank"],
        "supernet_first": 100 * by_score["true_test_accuracy"],
        "best_reranked": max(100 * r["true_test_accuracy"] for r in final["architectures"]),
        "best_scored": max(100 * r["true_test_accuracy"] for r in architectures),
        "scored": len(architectures),
        "taus": [r["reference"]["kendall_tau"] for r in rounds if "reference" in r],
        "minutes": seconds / 60,
    }


def table(runs: list[dict]) -> str:
    """One row per run and a mean row per strategy (and recipe, where runs differ)."""
    lines = ["| strategy | seed | found (rank) | supernet's first | best re-ranked | "
             "best scored | cells scored | tau per round | minutes |",
             "|---|---|---|---|---|---|---|---|---|"]
    varying = [key for key in RECIPE_KEYS
               if len({str(run["recipe"][key]) for run in runs}) > 1]

    def label(run: dict) -> str:  # the strategy, and the settings the runs differ in
        return " ".join([run["strategy"]] + [f"{key.replace('_', '-')} {run['recipe'][key]}"
                                             for key in varying])

    for name in sorted({label(run) for run in runs}):
        group = [run for run in runs if label(run) == name]
        for run in sorted(group, key=lambda run: run["seed"]):
            taus = ", ".join(f"{tau:.2f}" for tau in run["taus"])
            lines.append(f"| {name} | {run['seed']} | {run['found']:.2f} "
                         f"({run['found_rank']:,}) | {run['supernet_first']:.2f} | "
                         f"{run['best_reranked']:.2f} | {run['best_scored']:.2f} | "
                         f"{run['scored']} | {taus} | {run['minutes']:.1f} |")
        columns = [mean_std([run[key] for run in group]) for key in
                   ("found", "supernet_first", "best_reranked", "best_scored", "minutes")]
        lines.append(f"| **{name}, mean** | | **{columns[0]}** | {columns[1]} | "
                     f"{columns[2]} | {columns[3]} | | | {columns[4]} |")
    return "\n".join(lines)


def edge_groups_table(folders: list[Path], position: int) -> str:
    """Per run and per op on edge ``position``: the supernet's ranking within the group."""
    from naonet.analysis.correlation import kendall_tau
    from naonet.spaces import get_space

    space = get_space("nb201")
    lines = [f"| run | op on edge {position} | cells | tau within | group's first | "
             "group's best |", "|---|---|---|---|---|---|"]
    for folder in folders:
        records = json.loads((folder / POOL_JSON).read_text())["architectures"]
        groups: dict[int, list[dict]] = {}
        for record in records:  # pool.json lists the pool best score first
            choice = space.to_integers(space.parse(record["arch"]))[position]
            groups.setdefault(choice, []).append(record)
        for choice, group in sorted(groups.items()):
            tau = kendall_tau([r["supernet_score"] for r in group],
                              [r["true_test_accuracy"] for r in group])
            best = max(100 * r["true_test_accuracy"] for r in group)
            lines.append(f"| {folder.name} | {space.op_names[choice]} | {len(group)} | "
                         f"{tau:.2f} | {100 * group[0]['true_test_accuracy']:.2f} | "
                         f"{best:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--by-edge", type=int, default=None, metavar="E",
                        help="per op on edge E (0-5): the supernet's ranking within it")
    args = parser.parse_args(argv)
    if args.by_edge is not None:
        print(edge_groups_table(args.runs, args.by_edge))
        return 0
    runs = [run for run in map(read_run, args.runs) if run is not None]
    if not runs:
        print("no finished runs", file=sys.stderr)
        return 2
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
