"""``nao search --space nb201 --evaluator table:PATH --budget Q``: search a benchmark table.

The ``search`` subcommand calls :func:`add_table_search_arguments` on its parser and
hands over to :func:`run_table_search` when ``--evaluator`` is ``table:PATH``. This
module reads ``args.evaluator``, ``args.space`` and ``args.seed`` (set by ``search``)
and the options it adds itself.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from naonet import options
from naonet.cli.options import check_output_file, integer_flag, json_with_keys
from naonet.constraints import Budget
from naonet.errors import UserError
from naonet.files import atomic_write_text
from naonet.nb201 import VALIDATION_METRICS, BenchmarkTable, metric_flag
from naonet.nb201.table import DEFAULT_METRIC, TABLE_SPACE, metric_column
from naonet.revision import code_revision
from naonet.search.reference import table_path
from naonet.strategies import STRATEGIES, EvolutionConfig, NAOConfig
from naonet.strategies.benchmark import BenchmarkConfig, best_possible, search_table
from naonet.text import counted


def add_table_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of a search over a benchmark table (``--evaluator table:PATH``)."""
    group = parser.add_argument_group("benchmark-table search (--evaluator table:PATH)")
    budget = BenchmarkConfig.budget  # a table search's default, as bench-search's
    group.add_argument("--budget", type=integer_flag, default=budget,
                       help=f"distinct architectures the search may query (default {budget})")
    group.add_argument("--strategy", choices=sorted(STRATEGIES), default="nao",
                       help="search strategy (default nao); the one-shot search runs "
                            "random and evolution on the same supernet and counts")
    group.add_argument("--metric", type=metric_flag, choices=sorted(VALIDATION_METRICS),
                       default=DEFAULT_METRIC,
                       help=f"validation metric the search sees (default {DEFAULT_METRIC}; "
                            "its column's name, valid_acc_200ep, names it too)")
    group.add_argument("--result-json", default=None, metavar="FILE",
                       help="also write the result (and the best-so-far curve) to FILE")
    add_strategy_options(group)
    add_budget_arguments(parser.add_argument_group(
        "budget on the final network (any search: only architectures within it)"))


def optional_number(cast):
    """An argparse type: a number, or 'none' for no limit (as for every optional option)."""
    def parse(text: str):
        return None if options.means_none(text) else cast(text)

    parse.__name__ = cast.__name__  # argparse names the type in its error message
    return parse


def add_budget_arguments(group) -> None:
    """--max-params, --max-macs, --max-latency-ms and --latency-batch."""
    group.add_argument("--max-params", type=optional_number(options.whole_number), default=None,
                       metavar="N",
                       help="parameters of the final network (space.final_size; aux head excluded)")
    group.add_argument("--max-macs", type=optional_number(options.whole_number), default=None,
                       metavar="N",
                       help="multiply-adds of one image through the final network")
    group.add_argument("--max-latency-ms", type=optional_number(float), default=None,
                       metavar="T",
                       help="median forward time of the final network on --device at "
                            "--latency-batch, cached per device")
    group.add_argument("--latency-batch", type=integer_flag, default=1, metavar="B",
                       help="batch the latency limit applies to (batch 1 is timed too; "
                            "default: 1)")


def latency_device(device: str | None, limits: Budget) -> str:
    """Where latency is timed: --device (auto: the accelerator if any), else the CPU."""
    if limits.max_latency_ms is None or device in (None, "cpu"):
        return "cpu"
    from naonet.distributed import resolve_device

    return str(resolve_device(device))


def budget_from_args(args: argparse.Namespace) -> Budget:
    from naonet.constraints import check_latency_batch_read

    check_latency_batch_read(args.latency_batch, args.max_latency_ms)
    return Budget(args.max_params, args.max_macs, args.max_latency_ms, args.latency_batch)


def add_strategy_options(group) -> None:
    """Tuning options of NAO and evolution, shared with ``nao bench-search``."""
    from naonet.controller.rounds import SCORE_TRANSFORMS
    from naonet.search.config import SearchConfig

    nao, evolution, one_shot = NAOConfig(), EvolutionConfig(), SearchConfig()
    group.add_argument("--initial-queries", type=integer_flag, default=nao.initial_queries,
                       help=f"NAO: random architectures before the first controller "
                            f"(default {nao.initial_queries})")
    group.add_argument("--candidates-per-round", type=integer_flag,
                       default=nao.candidates_per_round,
                       help=f"NAO: new architectures per round "
                            f"(default {nao.candidates_per_round})")
    group.add_argument("--seed-count", type=integer_flag, default=nao.seed_count,
                       help=f"NAO: generate from the best this many (default {nao.seed_count})")
    group.add_argument("--max-lambda", type=integer_flag, default=nao.max_lambda,
                       help=f"NAO: largest step size tried when generating (default "
                            f"{nao.max_lambda}; one-shot: {one_shot.max_lambda})")
    group.add_argument("--controller-epochs", type=integer_flag,
                       default=nao.training.epochs,
                       help=f"NAO: controller epochs per round (default {nao.training.epochs})")
    group.add_argument("--score-transform", choices=SCORE_TRANSFORMS,
                       default=nao.score_transform,
                       help=f"NAO: train the controller on score ranks or raw scores "
                            f"(default {nao.score_transform}; one-shot: "
                            f"{one_shot.score_transform})")
    # shared with the one-shot search, whose rounds may also stay short ('none')
    group.add_argument("--fill", default=nao.fill,
                       help=f"NAO: what completes a round the decoder leaves short: random "
                            f"new architectures, mutation (of the best) or predicted (the "
                            f"mutations the predictor rates highest); the one-shot "
                            f"search also takes none (default {nao.fill}; one-shot: "
                            f"{one_shot.fill})")
    group.add_argument("--population-size", type=integer_flag,
                       default=evolution.population_size,
                       help=f"evolution: population size (default "
                            f"{evolution.population_size}; one-shot: {one_shot.population_size})")
    group.add_argument("--sample-size", type=integer_flag, default=evolution.sample_size,
                       help=f"evolution: tournament size (default {evolution.sample_size}; "
                            f"one-shot: {one_shot.sample_size})")


def strategy_configs(args: argparse.Namespace) -> dict:
    """The config of each strategy from the command line (its checks name the flags)."""
    nao = NAOConfig()
    nao = replace(nao, initial_queries=args.initial_queries,
                  candidates_per_round=args.candidates_per_round, seed_count=args.seed_count,
                  max_lambda=args.max_lambda,
                  score_transform=args.score_transform, fill=args.fill,
                  training=replace(nao.training, epochs=args.controller_epochs))
    evolution = EvolutionConfig(args.population_size, args.sample_size)
    return {"nao": nao, "evolution": evolution}


def load_table(evaluator: str, space: str | None, every_cell: bool = True) -> BenchmarkTable:
    """The benchmark table of ``--evaluator table:PATH`` for ``--space`` (``every_cell``:
    as :meth:`BenchmarkTable.load`; a search needs every cell)."""
    check_table_space(space)  # refused before the table is read
    return BenchmarkTable.load(table_path(evaluator, "--evaluator"), every_cell=every_cell)


def check_table_space(space: str | None) -> None:
    """A UserError unless ``--space`` (None: not given) is the benchmark table's space."""
    if space not in (None, TABLE_SPACE):
        raise UserError(f"a table evaluator searches the {TABLE_SPACE} space, not {space!r}; "
                        f"pass --space {TABLE_SPACE}")


RESULT_FILE = json_with_keys("strategy", "seed", "budget", "table")  # what --result-json holds


def run_table_search(args: argparse.Namespace) -> int:
    """Search the table, print the best architecture by validation and its test accuracy."""
    limits = budget_from_args(args)  # bad flags fail before the table is read
    seed = getattr(args, "seed", 0) or 0
    if args.result_json:
        check_output_file(table_path(args.evaluator, "--evaluator"), args.result_json,
                          RESULT_FILE, "a result of nao search --evaluator table:CSV")
    options.check_seed(seed, "--seed")
    config = strategy_configs(args).get(args.strategy)
    table = load_table(args.evaluator, getattr(args, "space", None))
    summary = search_table(table, args.strategy, args.budget, seed, args.metric, config,
                           limits, latency_device(getattr(args, "device", None), limits))
    whole_best = table.test_accuracy(table.best(metric_column(args.metric)))
    print(f"strategy {args.strategy}, {counted(summary.queries, 'query', 'queries')}, seed {seed}, "
          f"metric {args.metric}")
    print(f"best by validation: index {summary.best_index} {summary.best}")
    print(f"  validation {100 * summary.best_validation:.2f} %  "
          f"test {100 * summary.test_accuracy:.2f} %  "
          f"(best-by-validation of the whole table: test {100 * whole_best:.2f} %)")
    if limits.active:
        print(f"  within the budget, {best_possible(table, limits, args.metric)[1]}")
    if args.result_json:
        result = {"strategy": args.strategy, "seed": seed, "metric": args.metric,
                  "budget": args.budget, "table": str(table.source),
                  "config": asdict(config) if config is not None else {},
                  "limits": limits.to_dict(), "revision": code_revision(),
                  **summary.to_dict()}
        atomic_write_text(Path(args.result_json), json.dumps(result, indent=1) + "\n")
    return 0
