"""The files a search leaves in its run folder (rank 0 writes them, atomically).

* ``arch_pool``: every architecture scored so far, best supernet score first, one
  ``space:integers`` line each, or a NAS-Bench-201 cell in the benchmark's form
  (``nao train --arch``, ``nao show`` and ``nao info`` accept any line as it is);
  ``arch_pool.perf``: their supernet scores, line by line (as the released search's
  ``arch_pool.N`` and ``arch_pool.perf.N`` are laid out: validation accuracy as a
  fraction, or with ``score_metric`` 'loss' minus the mean cross-entropy).
* ``arch_pool.N``, ``arch_pool.perf.N``: the same for the pool as round N + 1 scored it,
  under the released search's names (which number rounds from 0).
* ``arch_pool.final``: the top architectures (one of each canonical form; with a
  few-shot supernet, the copies' best in turn), re-ranked by training from scratch once
  the search is done (until then: the current top by supernet score);
  ``arch_pool.perf.final``: their re-rank accuracies (or supernet scores);
  ``arch_pool.final.json``: both, with every score.
* ``pool.json``: per architecture its string, round of birth, supernet score (latest
  and per round), controller prediction, re-rank accuracy, parameter count.
* ``rounds.jsonl``: one summary per round; ``scores.png``: the score distribution per
  round. Rounds are numbered from 1 in every file's content.
* ``pareto.json`` (and ``pareto.png``): the pool's Pareto fronts of supernet score
  against each cost of the final network it records (parameters; multiply-adds and
  latency where measured).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from naonet.files import atomic_write_text
from naonet.search.state import DONE, PoolEntry, SearchState, json_number

DEFAULT_FINAL_COUNT = 5  # arch_pool.final without re-ranking: the seed README's top 5

# The output files other modules read too.
FINAL_POOL = "arch_pool.final"
POOL_JSON = "pool.json"
ROUNDS_LOG = "rounds.jsonl"
PARETO_JSON = "pareto.json"


def distinct_top(pool: Sequence[PoolEntry], count: int,
                 group_of: Callable | None = None) -> list[PoolEntry]:
    """The first ``count`` entries of ``pool`` that compute different functions: of
    architectures with one canonical form (``space.canonical``: in NB201 the cells that
    differ only on edges that cannot reach the output) only the first counts. Re-ranking
    twins would spend its training on one function several times.

    With ``group_of`` (architecture -> label) the groups take turns: the best of every
    group (groups in the order of their best), then the second of every group, and so
    on. A few-shot supernet's copies each score with their own weights, so their scores
    rank cells within a copy, and training from scratch compares across copies."""
    top, seen = [], set()
    for entry in pool:
        if group_of is None and len(top) == count:
            break
        form = entry.architecture.space.canonical(entry.architecture)
        if form not in seen:
            seen.add(form)
            top.append(entry)
    if group_of is None:
        return top
    groups: dict = {}  # label -> its entries, best first; labels in order of their best
    for entry in top:
        groups.setdefault(group_of(entry.architecture), []).append(entry)
    turns = itertools.zip_longest(*groups.values())
    return [entry for turn in turns for entry in turn if entry is not None][:count]


def final_entries(state: SearchState, count: int,
                  group_of: Callable | None = None) -> list[PoolEntry]:
    """The top ``count`` distinct architectures by supernet score (taking turns among
    the groups of ``group_of``, see :func:`distinct_top`), re-ordered by re-rank
    accuracy where known."""
    top = distinct_top(state.pool, count, group_of)
    if is_reranked(top):
        return sorted(top, key=lambda entry: -entry.rerank)  # stable: ties keep pool order
    return top


def is_reranked(entries: Sequence[PoolEntry]) -> bool:
    """Whether every one of ``entries`` (at least one) has a re-rank accuracy."""
    return bool(entries) and all(not math.isnan(entry.rerank) for entry in entries)


def entry_record(entry: PoolEntry, network_config, truth=None, costs=None) -> dict:
    """One architecture as people and scripts read it (rounds from 1, scores as fractions);
    ``truth(architecture)`` adds the benchmark's test accuracy and rank (reporting only),
    ``costs(architecture)`` the final network's parameters (multiply-adds, latency)."""
    record = {"arch": entry.architecture.to_qualified_string(), "round": entry.born + 1,
            "supernet_score": json_number(entry.score),
            "controller_prediction": json_number(entry.prediction),
            "rerank_accuracy": json_number(entry.rerank),
            "rerank_runs": list(entry.rerank_runs),  # each training's; their mean above
            "params": entry.architecture.space.parameter_count(entry.architecture,
                                                               network_config),
            "scores_by_round": {str(r + 1): s for r, s in sorted(entry.scores.items())}}
    if costs is not None:
        record.update(costs(entry.architecture))
    if truth is not None:
        found = truth(entry.architecture)
        record.update(true_test_accuracy=found.test_accuracy, true_rank=found.rank)
    return record


def write_search_outputs(run_dir: Path, state: SearchState, final_count: int,
                         network_config, header: dict, truth=None, costs=None,
                         group_of: Callable | None = None) -> tuple[list[dict], dict | None]:
    """Rewrite every output file from the state (idempotent: a resumed search rewrites
    the same content); ``group_of`` as for :func:`final_entries`. Returns what pool.json
    and pareto.json hold: the pool's records, and the fronts (None without costs)."""
    final = final_entries(state, final_count, group_of)
    _write_lines(run_dir / "arch_pool", [e.architecture.to_qualified_string()
                                         for e in state.pool])
    _write_lines(run_dir / "arch_pool.perf", [_text(e.score) for e in state.pool])
    for round_index in sorted({r for entry in state.pool for r in entry.scores}):
        write_round_pool(run_dir, state.pool, round_index)
    _write_lines(run_dir / FINAL_POOL, [e.architecture.to_qualified_string()
                                               for e in final])
    reranked = is_reranked(final)
    _write_lines(run_dir / "arch_pool.perf.final",
                 [_text(e.rerank if reranked else e.score) for e in final])
    records = {id(e): entry_record(e, network_config, truth, costs) for e in state.pool}
    summary = {**header, "phase": state.phase, "rounds_done": len(state.rounds_log),
               "complete": state.phase == DONE, "reranked": reranked}
    _write_json(run_dir / "arch_pool.final.json",
                {**summary, "architectures": [records[id(e)] for e in final]})
    _write_json(run_dir / POOL_JSON,
                {**summary, "architectures": [records[id(e)] for e in state.pool]})
    atomic_write_text(run_dir / ROUNDS_LOG,
                      "".join(json.dumps(record) + "\n" for record in state.rounds_log))
    pool_records = [records[id(e)] for e in state.pool]
    fronts = None
    if costs is not None:
        fronts = pareto_fronts(pool_records, [records[id(e)]["arch"] for e in final])
        _write_json(run_dir / PARETO_JSON, {**summary, **fronts})
    return pool_records, fronts


def write_round_pool(run_dir: Path, pool: Sequence[PoolEntry], round_index: int) -> None:
    """``arch_pool.N`` and ``arch_pool.perf.N``: the pool as round ``round_index`` scored
    it, best first, under the released search's names (numbered from 0, as it numbers
    them: ``arch_pool.0`` holds round 1), so that its users' scripts read ours."""
    scored = sorted((entry for entry in pool if round_index in entry.scores),
                    key=lambda entry: -entry.scores[round_index])
    _write_lines(run_dir / f"arch_pool.{round_index}",
                 [entry.architecture.to_qualified_string() for entry in scored])
    _write_lines(run_dir / f"arch_pool.perf.{round_index}",
                 [_text(entry.scores[round_index]) for entry in scored])


PARETO_COSTS = ("final_parameters", "final_macs", "final_latency_ms")


def pareto_fronts(records: list[dict], final: list[str]) -> dict:
    """The non-dominated architectures of (supernet score, cost) for every cost the
    records carry (latency: at the budget's batch), best score first."""
    from naonet.constraints import pareto_front

    fronts = {}
    for cost in PARETO_COSTS:
        scored = [r for r in records if cost in r and r["supernet_score"] is not None]
        if not scored:
            continue
        points = [(r["supernet_score"], _cost_value(r[cost])) for r in scored]
        fronts[cost] = [scored[i] for i in pareto_front(points)]
    return {"objective": "supernet_score (higher is better) against each cost (lower is "
                         "better)", "final": final, "fronts": fronts}


def _cost_value(value) -> float:
    """A cost as one number (latency records hold one time per batch: the largest batch)."""
    if isinstance(value, dict):
        return float(value[max(value, key=int)])
    return float(value)


def round_record(state: SearchState, new: int, seconds: float, train_loss: float,
                 train_top1: float, controller=None, lambda_reached: int | None = None
                 ) -> dict:
    """The summary of the round ``state.round`` (after scoring, and the controller)."""
    scores = [entry.score for entry in state.pool]
    record = {"round": state.round + 1, "pool": len(scores), "new": new,
              "best_score": max(scores), "median_score": statistics.median(scores),
              "supernet_train_loss": json_number(train_loss),
              "supernet_train_top1": json_number(train_top1),
              "controller_pairwise_accuracy": None, "controller_hamming_distance": None,
              "controller_valid": None, "lambda_reached": lambda_reached,
              "seconds": round(seconds, 1)}
    if controller is not None:
        record.update(controller_pairwise_accuracy=json_number(controller.pairwise_accuracy),
                      controller_hamming_distance=json_number(controller.hamming_distance),
                      controller_valid=controller.num_valid)
    return record


def summary_line(record: dict, rounds: int) -> str:
    """One line per round for people."""
    text = (f"round {record['round']}/{rounds}: pool {record['pool']} (+{record['new']}), "
            f"score best {record['best_score']:.4f} median {record['median_score']:.4f}")
    if record["controller_valid"] is not None:
        text += (f", controller pairwise acc {_optional(record['controller_pairwise_accuracy'])}"
                 f" hamming {_optional(record['controller_hamming_distance'], 2)} "
                 f"(held-out {record['controller_valid']})")
    if record["lambda_reached"] is not None:
        text += f", lambda {record['lambda_reached']}"
    if record.get("reference"):
        truth = record["reference"]
        text += (f"; truth: tau {_optional(truth['kendall_tau'])}, best "
                 f"{100 * truth['best_test_accuracy']:.2f} % (rank {truth['best_rank']:,})")
    return text + f" [{record['seconds']:.0f} s]"


def _optional(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _text(value: float) -> str:
    return repr(float(value))  # the shortest text that reads back as the same float


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def _write_json(path: Path, value: dict) -> None:
    atomic_write_text(path, json.dumps(value, indent=1) + "\n")
