"""Summarise `nao correlate --supernet` runs: tau against the training budget, mean and
std over seeds, beside the parameter-count ranking of the same cells (a markdown table).

    python benchmarks/nb201_ranking.py RUN_DIR [RUN_DIR ...]

Each RUN_DIR is the `--output` of one `nao correlate --supernet` run (one seed); runs
must share their recipe. benchmarks/nb201_ranking.sh makes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

SAMPLINGS = ("uniform", "balanced")


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f}"


def tau_at(run: dict, sampling: str, epochs: int) -> list[float]:
    curve = run["samplings"].get(sampling, {}).get("curve", [])
    return [point["kendall_tau"] for point in curve if point["epochs"] == epochs]


def table(runs: list[dict]) -> str:
    """Rows: the scored budget points; columns: samplings and the parameter count."""
    points = sorted({(point["epochs"], point["images"]) for run in runs
                     for result in run["samplings"].values() for point in result["curve"]})
    parameters = mean_std([run["parameter_count"]["kendall_tau"] for run in runs])
    lines = ["| epochs | images seen | uniform tau | balanced tau | parameter count tau |",
             "|---|---|---|---|---|"]
    for epochs, images in points:
        cells = [mean_std([tau for run in runs for tau in tau_at(run, s, epochs)])
                 for s in SAMPLINGS]
        lines.append(f"| {epochs} | {images:,} | {cells[0]} | {cells[1]} | {parameters} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    runs = []
    for folder in args.runs:
        path = folder / "summary.json"
        if not path.is_file():
            print(f"skipping {folder}: no summary.json (no point scored)", file=sys.stderr)
            continue
        run = json.loads(path.read_text())
        if not run.get("finished", True):  # written at each scored point; stopped early
            epochs = [point["epochs"] for result in run["samplings"].values()
                      for point in result["curve"]]
            print(f"{folder}: unfinished (stopped after epoch {max(epochs)} of "
                  f"{run['config']['search']['supernet_epochs']}); its scored points count")
        runs.append(run)
    if not runs:
        print("no runs with a scored point", file=sys.stderr)
        return 2
    print(f"{len(runs)} run(s); {runs[0]['config']['sample_size']} cells against "
          f"{runs[0]['config']['metric']}; revision {runs[0].get('revision', '?')}")
    print(table(runs))
    for sampling in SAMPLINGS:
        results = [run["samplings"][sampling] for run in runs if sampling in run["samplings"]]
        if results:
            print(f"{sampling}: final tau {mean_std([r['kendall_tau'] for r in results])}, "
                  f"spearman {mean_std([r['spearman_rho'] for r in results])}, "
                  f"{mean_std([r['seconds'] / 60 for r in results])} min per run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
