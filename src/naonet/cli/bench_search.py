"""``nao bench-search``: compare search strategies on a benchmark table over seeds.

For every strategy and seed, search the table within the budget; print the mean and
std over seeds of the test accuracy of the best-by-validation architecture, and plot
the best-so-far curve of each strategy against queries.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from naonet.analysis.plots import plot_best_so_far
from naonet.cli.options import (
    add_told_apart,
    check_output_file,
    fill_defaults,
    integer_flag,
    json_with_keys,
    refuse_flags,
)
from naonet.cli.search import EVOLUTION_OPTIONS, TABLE_NAO_OPTIONS
from naonet.cli.table_search import (
    add_budget_arguments,
    add_strategy_options,
    budget_from_args,
    latency_device,
    load_table,
    strategy_configs,
)
from naonet.errors import UserError
from naonet.files import append_line, as_json_holds, atomic_write_text, complete_lines
from naonet.nb201 import VALIDATION_METRICS, metric_flag
from naonet.revision import code_revision
from naonet.search.plots import check_can_draw, check_picture_path
from naonet.search.reference import table_path
from naonet.strategies import STRATEGIES
from naonet.strategies.benchmark import (
    BenchmarkConfig,
    StrategyRuns,
    benchmark_strategies,
    best_possible,
)
from naonet.text import counted

DEFAULT_STRATEGIES = "random,evolution,nao"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench-search", help="compare search strategies on a "
                                   "benchmark table over seeds", description=__doc__)
    parser.add_argument("--evaluator", required=True, metavar="table:PATH",
                        help="the benchmark table to search (table:PATH of the CSV)")
    defaults = BenchmarkConfig  # said once, there
    parser.add_argument("--space", default=defaults.space,
                        help=f"search space (default {defaults.space})")
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                        help=f"comma-separated strategies (default {DEFAULT_STRATEGIES}; "
                             "known: " + "; ".join(f"{name}, {strategy.description}"
                                                   for name, strategy in STRATEGIES.items())
                             + ")")
    parser.add_argument("--budget", type=integer_flag, default=defaults.budget,
                        help=f"queries per search (default {defaults.budget})")
    parser.add_argument("--seeds", type=integer_flag, default=defaults.seeds,
                        help="searches per strategy (seeds first-seed .. first-seed + seeds "
                             f"- 1; default {defaults.seeds})")
    parser.add_argument("--first-seed", type=integer_flag, default=defaults.first_seed)
    parser.add_argument("--metric", type=metric_flag, choices=sorted(VALIDATION_METRICS),
                        default=defaults.metric,
                        help=f"validation metric the searches see (default {defaults.metric}; "
                             "its column's name, valid_acc_200ep, names it too)")
    parser.add_argument("--plot", default="bench_search.png", metavar="PNG",
                        help="where to write the best-so-far plot (default "
                             "bench_search.png; '' for none)")
    parser.add_argument("--output", default=None, metavar="JSON",
                        help="also write every run's result to this JSON file; each search "
                             "done is kept beside it (.NAME.progress.json) until it is "
                             "written, and a stopped comparison rerun resumes from there "
                             "(a finished one prints the file's results)")
    parser.add_argument("--quiet", action="store_true", help="no line per search")
    # told apart: a strategy's option with that strategy left out is refused, not dropped
    strategy_defaults = add_told_apart(
        parser, lambda owner: add_strategy_options(owner.add_argument_group("strategy options")))
    parser.set_defaults(strategy_defaults=strategy_defaults)
    budget = parser.add_argument_group(
        "budget on the final network (every search stays within it)")
    add_budget_arguments(budget)
    budget.add_argument("--device", default=None,
                        help="where --max-latency-ms is timed: cpu (default), cuda, cuda:N, "
                             "mps or auto (the accelerator if there is one)")
    parser.set_defaults(handler=run)


def benchmark_config(args: argparse.Namespace) -> BenchmarkConfig:
    """The run's frozen config, from the flags."""
    names = tuple(name.strip() for name in args.strategies.split(",") if name.strip())
    for owner, options in (("nao", TABLE_NAO_OPTIONS), ("evolution", EVOLUTION_OPTIONS)):
        if owner not in names:
            refuse_flags(args, options, f"--strategies with {owner}",
                         f" or add {owner} to --strategies (this comparison runs "
                         f"{','.join(names)})", "nao bench-search --help lists them")
    fill_defaults(args, args.strategy_defaults)
    limits = budget_from_args(args)
    return BenchmarkConfig(table=args.evaluator, space=args.space, strategies=names,
                           budget=args.budget, first_seed=args.first_seed, seeds=args.seeds,
                           metric=args.metric,
                           strategy_configs=strategy_configs(args), limits=limits,
                           device=latency_device(args.device, limits))


RESULT_FILE = json_with_keys("config", "strategies", "best_possible")  # what --output holds
STRATEGY_FLAGS = {*TABLE_NAO_OPTIONS, *EVOLUTION_OPTIONS}  # a strategy's options, as flags


def run(args: argparse.Namespace) -> int:
    config = benchmark_config(args)
    table_file = table_path(config.table, "--evaluator")
    if args.plot:  # before minutes of searching, not after
        check_picture_path(args.plot)
        check_output_file(table_file, args.plot)
        check_can_draw("--plot ''")
    if args.output:
        check_output_file(table_file, args.output, RESULT_FILE, "a nao bench-search result")
    table = load_table(config.table, config.space)
    seeds = config.seed_range
    progress = Progress(args.output, config, table.space) if args.output else None
    args.resumes = progress is not None  # a stop's line says a rerun resumes
    if progress is not None and progress.finished:
        print(progress.resuming_text(len(config.strategies) * len(seeds)), file=sys.stderr,
              flush=True)

    def report(strategy, seed, summary, seconds) -> None:
        if progress is not None:
            progress.add(strategy, seed, summary, seconds)
        if not args.quiet:
            print(f"{strategy:<10} seed {seed:<4} best index {summary.best_index:<6} "
                  f"valid {100 * summary.best_validation:6.2f}  "
                  f"test {100 * summary.test_accuracy:6.2f}",
                  file=sys.stderr, flush=True)

    results = benchmark_strategies(table, config.strategies, seeds, config.budget,
                                   config.metric, config.strategy_configs, on_run=report,
                                   limits=config.limits, device=config.device,
                                   finished=progress.finished if progress else None)
    best, best_text = best_possible(table, config.limits, config.metric)
    print_summary(results, config, best_text)
    # the results first: a picture that fails to draw loses no minutes of searching
    if args.output and not progress.done:
        atomic_write_text(Path(args.output), json.dumps(
            {"config": config.to_dict(), "revision": code_revision(),
             "best_possible": best, "table": table.source,
             "strategies": [runs.to_dict() for runs in results]}, indent=1) + "\n")
        progress.path.unlink(missing_ok=True)  # the result holds every search now
    if args.plot:
        plot_best_so_far({runs.strategy: [s.test_curve for s in runs.summaries]
                          for runs in results}, args.plot, reference=best,
                         title=f"{table.space.name}, {counted(config.seeds, 'seed')}, "
                               f"metric {config.metric}{config.limits.text()}")
        print(f"plot: {args.plot}")
    return 0


class Progress:
    """The searches a comparison with ``--output FILE`` has done, kept in a hidden file
    beside it (``.FILE.progress.json``) until FILE is written: a stopped comparison,
    rerun with the same options, takes them and repeats none (a search is a function of
    its seed). A finished FILE is read the same way: its rerun searches nothing and
    prints FILE's results.

    The hidden file is JSON lines: the options and code revision, then one line per
    search, appended as it ends (rewritten whole after every search, it made 600
    random searches of 100 queries take 50 s instead of 13 s on 2 CPU cores). A search
    whose line a stop cut short is searched again. A naonet before 2026-12-06 wrote it
    as one JSON object with the searches in ``runs``; a rerun reads that too."""

    def __init__(self, output: str, config: BenchmarkConfig, space):
        output = Path(output)
        self.path = output.with_name(f".{output.name}.progress.json")
        self.config = as_json_holds(config.to_dict())
        self.revision = code_revision()
        self.records: list[dict] = []
        self.finished: dict = {}
        self.made_by = None  # the code revision of the kept searches, where not this one
        self.output = output
        self.done = False  # FILE holds this comparison's results already
        self.started = False  # the hidden file is written afresh, then appended to
        if self.path.exists():
            self._read(space)
        elif output.exists():
            self._read_finished(space)

    def _read(self, space) -> None:
        from naonet.nb201.evaluator import SearchSummary
        from naonet.training.checkpoint import check_same_run

        try:
            saved = read_progress(self.path.read_text(encoding="utf-8"))
            records, config = saved["runs"], saved["config"]
            if not isinstance(records, list) or not isinstance(config, dict):
                raise TypeError("its runs are not a list or its config not a mapping")
            finished = {(record["strategy"], int(record["seed"])):
                        (SearchSummary.from_dict(record, space), float(record["seconds"]))
                        for record in records}
            revision = str(saved["revision"])
        except (OSError, ValueError, KeyError, TypeError, UserError) as error:
            raise UserError(f"{self.path}, the searches of a stopped nao bench-search, is "
                            f"damaged ({type(error).__name__}: {error}); delete it to start "
                            "over") from None
        # the table's path may change (the same file from another folder, a relative
        # path), as a ranking experiment's may
        check_same_run(_flat_options(config), _flat_options(self.config), self.path,
                       {"table"}, "stopped nao bench-search",
                       start_over=f"delete {self.path} to start over")
        self.records, self.finished = records, finished
        self.made_by = revision if revision != self.revision else None

    def _read_finished(self, space) -> None:
        """The searches of a finished comparison's result (FILE), taken as they are: a
        rerun of the same command prints its results and repeats no search (it ran all
        of them again, and one with other options replaced the file without a word)."""
        from naonet.nb201.evaluator import SearchSummary
        from naonet.training.checkpoint import check_same_run

        try:
            saved = json.loads(self.output.read_text(encoding="utf-8"))
            config, revision = saved["config"], saved.get("revision")  # None: not kept
            records = [{**run, "strategy": runs["strategy"], "seed": int(run["seed"]),
                        # the result keeps each strategy's total time: shared out alike
                        "seconds": float(runs["seconds"]) / len(runs["runs"])}
                       for runs in saved["strategies"] for run in runs["runs"]]
            finished = {(record["strategy"], record["seed"]):
                        (SearchSummary.from_dict(record, space), record["seconds"])
                        for record in records}
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError,
                UserError) as error:
            raise UserError(f"{self.output}, a nao bench-search result, is damaged "
                            f"({type(error).__name__}: {error}); delete it, or choose "
                            "another --output") from None
        check_same_run(_flat_options(config), _flat_options(self.config), self.output,
                       {"table"}, "finished nao bench-search",
                       start_over=f"choose another --output, or delete {self.output} to "
                                  "start over", rerun="print its results")
        self.records, self.finished, self.done = records, finished, True
        self.made_by = revision if revision not in (None, self.revision) else None

    def add(self, strategy: str, seed: int, summary, seconds: float) -> None:
        """Keep one more search, at once (a stop loses at most the one under way)."""
        record = {"strategy": strategy, "seed": seed, "seconds": seconds,
                  **summary.to_dict()}
        self.records.append(record)
        if self.started:
            append_line(self.path, json.dumps(record))
            return
        # the first search of this run: the file afresh (the kept searches, and none of
        # a line a stop cut short), written whole; then one line per search
        atomic_write_text(self.path, "".join(
            json.dumps(line) + "\n" for line in [
                {"config": self.config, "revision": self.revision}, *self.records]))
        self.started = True

    def resuming_text(self, total: int) -> str:
        """The line a resumed comparison starts with."""
        older = f"; made by {self.made_by}, this is {self.revision}" if self.made_by else ""
        if self.done:
            return (f"finished already: the {counted(total, 'search', 'searches')} of "
                    f"{self.output}, whose results follow (the file is left as it is"
                    f"{older})")
        return (f"resuming: {len(self.finished)} of {counted(total, 'search', 'searches')} "
                f"done (kept in {self.path}{older})")


def read_progress(text: str) -> dict:
    """A progress file's options, revision and searches (``config``, ``revision``,
    ``runs``): JSON lines (a header, then a search a line; a last line a stop cut short
    left out), or one JSON object as a naonet before 2026-12-06 wrote it."""
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None  # several lines, or damaged (the lines say which)
    if isinstance(whole, dict) and "runs" in whole:
        return whole
    lines = complete_lines(text)
    if not lines:
        raise ValueError("it holds no line of options")
    header, *records = [json.loads(line) for line in lines]
    return {**header, "runs": records}


def _flat_options(config: dict) -> dict:
    """A saved comparison's options by the flags that set them: a limit as its own
    option, a strategy's as ``STRATEGY.OPTION`` (the NAO controller's epochs as
    --controller-epochs), so a refused resume names what differs."""
    flat = {key: value for key, value in config.items()
            if key not in ("limits", "strategy_configs")}
    flat.update(config.get("limits") or {})
    for strategy, options in (config.get("strategy_configs") or {}).items():
        for key, value in options.items():
            if key == "training" and isinstance(value, dict) and "epochs" in value:
                value = dict(value)  # the saved config stays whole
                flat["controller_epochs"] = value.pop("epochs")
            flat[key if key in STRATEGY_FLAGS else f"{strategy}.{key}"] = value
    return flat


def print_summary(results: list[StrategyRuns], config: BenchmarkConfig,
                  best_text: str) -> None:
    print(f"test accuracy of the best-by-validation architecture after "
          f"{counted(config.budget, 'query', 'queries')}, {counted(config.seeds, 'seed')} "
          f"(metric {config.metric})"
          f"{config.limits.text()}; {best_text}; "
          "std is the population standard deviation over seeds")
    # the seconds of one search, as the docs report them (the JSON's "seconds": all seeds)
    print(f"{'strategy':<12}{'mean':>8}{'std':>8}{'min':>8}{'max':>8}{'s/search':>10}")
    for runs in results:
        values = runs.test_accuracies
        print(f"{runs.strategy:<12}{100 * runs.mean():>8.2f}{100 * runs.std():>8.2f}"
              f"{100 * min(values):>8.2f}{100 * max(values):>8.2f}"
              f"{runs.seconds / len(values):>10.2f}")
