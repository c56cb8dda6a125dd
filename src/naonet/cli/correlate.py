"""``nao correlate``: how well one scoring of architectures ranks like another.

``nao correlate A B`` compares two score files (text ``ARCH SCORE`` lines, CSV, or a
search's ``arch_pool`` with the ``arch_pool.perf`` beside it) on
the architectures they share: Kendall's tau, Spearman's rho, pairwise accuracy and
precision at top-k (B is the reference).

``nao correlate --supernet --evaluator table:PATH --data DIR`` runs the paper's
experiment on NAS-Bench-201: train the supernet on a split of the CIFAR-10 training set
for E epochs with uniform and with balanced architecture sampling, score a sample of
architectures, and report Kendall's tau against the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from naonet.analysis.correlation import correlate
from naonet.analysis.scores import matched, read_scores, write_scores
from naonet.cli.options import integer_flag, refuse_torchrun
from naonet.errors import UserError
from naonet.nb201 import VALIDATION_METRICS, metric_flag
from naonet.nb201.table import TABLE_SPACE
from naonet.options import whole_number
from naonet.revision import code_revision
from naonet.text import counted

DEFAULT_TOP_K = "5,10"


EXPERIMENT_OUTPUT_HELP = ("folder for the score files and summary.json (default: none; "
                          "nothing is written without it)")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("correlate", help="rank correlation of two score files, "
                                   "or the supernet ranking experiment on NAS-Bench-201",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="two score files: A (scores) and B (reference)")
    parser.add_argument("--column-a", default=None, help="score column of A if it is a CSV")
    parser.add_argument("--column-b", default=None, help="score column of B if it is a CSV")
    parser.add_argument("--top-k", default=DEFAULT_TOP_K,
                        help=f"comma-separated k of precision at top-k (default "
                             f"{DEFAULT_TOP_K})")
    experiment = parser.add_argument_group(
        "supernet experiment (--supernet): the recipe is a search config (preset, --config "
        "file and the search's flags, below)")
    experiment.add_argument("--supernet", action="store_true",
                            help="run the supernet ranking experiment instead of "
                                 "comparing files")
    from naonet.search.config import PRESETS

    experiment.add_argument("--preset", choices=sorted(PRESETS), default=None,
                            help="a search preset as the supernet recipe (nb201-rank-cpu: "
                                 "the CPU recipe of docs/nas-bench-201.md; nb201-rank-gpu: "
                                 "the paper's scale)")
    experiment.add_argument("--config", default=None, help="YAML or JSON file of options")
    experiment.add_argument("--evaluator", dest="reference_alias", metavar="table:PATH",
                            help="the same as --reference")
    from naonet.search.ranking import (
        SET_BY_THE_EXPERIMENT,
        TRAIN_ON,
        UNREAD_SEARCH_OPTIONS,
        RankingConfig,
    )

    defaults = RankingConfig  # the experiment's defaults, said once

    # defaults None: a flag typed without --supernet is refused (RankingConfig fills them)
    experiment.add_argument("--archs", type=integer_flag, default=None,
                            help=f"architectures of the table scored (default "
                                 f"{defaults.sample_size})")
    samplings = ",".join(defaults.samplings)
    experiment.add_argument("--samplings", default=None,
                            help=f"comma-separated samplings compared (default {samplings})")
    experiment.add_argument("--metric", type=metric_flag, choices=sorted(VALIDATION_METRICS),
                            default=None,
                            help=f"table column to compare with (default {defaults.metric}; "
                                 "or by its column's name, valid_acc_200ep)")
    experiment.add_argument("--train-on", choices=TRAIN_ON, default=None,
                            help="what the supernet trains on: every cell of the table "
                                 "(space) or only the --archs cells it scores (sample, as a "
                                 f"search trains on its pool; default {defaults.train_on})")
    experiment.add_argument("--score-every", type=integer_flag, default=None,
                            help="also score every this many epochs: tau against the "
                                 f"training budget (default {defaults.score_every}: at the "
                                 "end only)")
    experiment.add_argument("--no-progress", action="store_true",
                            help="taken as nao train and nao search take it; the experiment "
                                 "draws no progress bars (one line per epoch)")
    from naonet.cli.options import add_dataclass_flags
    from naonet.cli.search import HELP
    from naonet.search.config import SearchConfig, field_names

    # --samplings and --train-on stand for two; the search's others are not read
    add_dataclass_flags(parser.add_argument_group("supernet recipe (search options)"),
                        SearchConfig, {**HELP, "output": EXPERIMENT_OUTPUT_HELP},
                        skip=tuple(SET_BY_THE_EXPERIMENT | UNREAD_SEARCH_OPTIONS))
    # ... and refused by name when given (left out of the help)
    add_dataclass_flags(parser, SearchConfig, dict.fromkeys(UNREAD_SEARCH_OPTIONS,
                                                           argparse.SUPPRESS),
                        skip=tuple(field_names() - UNREAD_SEARCH_OPTIONS))
    parser.set_defaults(handler=run)


def parse_top_k(text: str) -> tuple[int, ...]:
    try:
        values = tuple(whole_number(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--top-k {text!r} must be comma-separated integers") from None
    if not values or min(values) < 1:
        raise UserError(f"--top-k {text!r} must list integers >= 1")
    return values


def run(args: argparse.Namespace) -> int:
    if args.supernet:
        if args.files:
            raise UserError("--supernet takes no score files; drop them or drop --supernet")
        return run_experiment(args)
    refuse_experiment_flags(args)
    refuse_torchrun("nao correlate A B (without --supernet)")
    if len(args.files) != 2:
        raise UserError(f"give two score files (A and the reference B), got "
                        f"{len(args.files)}; or run the experiment with --supernet")
    scores = read_scores(args.files[0], args.column_a)
    reference = read_scores(args.files[1], args.column_b)
    keys, a, b = matched(scores, reference)
    for values, name, flag in ((a, args.files[0], "--column-a"), (b, args.files[1],
                                                                  "--column-b")):
        if len(set(values)) == 1:  # tau and rho would be nan, precision@k arbitrary
            raise UserError(f"every score of {name} is {values[0]:g}: there is no ranking to "
                            f"compare; check the file (or {flag})")
    top_k = parse_top_k(args.top_k)
    report = correlate(a, b, top_k)
    print(f"A: {args.files[0]} ({len(scores)})  B: {args.files[1]} ({len(reference)})")
    if len(keys) < len(scores):  # a cell B lacks, or a line of A that names none
        kept = set(keys)
        left_out = next(key for key in scores if key not in kept)
        print(f"left out: {counted(len(scores) - len(keys), 'architecture')} of A not in B "
              f"(the first: {left_out})")
    print("\n".join(report.lines()))
    skipped = [k for k in top_k if k > report.count]
    if skipped:
        print(f"precision@top-{', '.join(map(str, skipped))}: skipped, the files share only "
              f"{report.count} architectures")
    return 0


def refuse_experiment_flags(args: argparse.Namespace) -> None:
    """A UserError for an option of the supernet experiment given to a comparison of two
    files, which would otherwise drop it without a word."""
    from naonet.cli.options import refuse_flags
    from naonet.search.config import field_names
    from naonet.search.ranking import EXPERIMENT_FLAGS

    refuse_flags(args, ["reference_alias", "preset", "config", *EXPERIMENT_FLAGS.values(),
                        *sorted(field_names())],
                 "the supernet experiment (--supernet)", " to compare two files",
                 listed_by="nao correlate --help lists both uses",
                 shown_as={"reference_alias": "evaluator"})


def ranking_config(args: argparse.Namespace):
    """The experiment's frozen config (preset, then --config file, then flags), and
    whether it names an output folder (by --output or in the file)."""
    from naonet.cli.table_search import check_table_space
    from naonet.search.config import field_names, load_config_file, resolve_search_config
    from naonet.search.ranking import EXPERIMENT_FLAGS, RankingConfig

    if args.reference and args.reference_alias and args.reference != args.reference_alias:
        raise UserError(f"--reference {args.reference} and --evaluator "
                        f"{args.reference_alias} name two tables (--evaluator is another "
                        "name for --reference); pass one")
    reference = args.reference or args.reference_alias
    if not reference or not args.data:
        raise UserError("--supernet needs --reference table:PATH (the NAS-Bench-201 CSV) "
                        "and --data DIR (CIFAR-10)")
    check_table_space(args.space)  # before the search options, which check the space's size
    flags = {name: getattr(args, name, None) for name in field_names()}
    flags.update(reference=reference, space=args.space or TABLE_SPACE)
    file_values = load_config_file(args.config) if args.config else {}
    search = resolve_search_config(args.preset, file_values, flags)
    given = {field: getattr(args, flag) for field, flag in EXPERIMENT_FLAGS.items()
             if getattr(args, flag) is not None}
    if "samplings" in given:  # a comma-separated list on the command line
        given["samplings"] = tuple(part.strip() for part in given["samplings"].split(",")
                                   if part.strip())
    config = RankingConfig(search=search, reference=reference,
                           top_k=parse_top_k(args.top_k), **given)
    return config, args.output is not None or "output" in file_values


def run_experiment(args: argparse.Namespace) -> int:
    from naonet.cli.options import refuse_flags
    from naonet.cli.table_search import load_table
    from naonet.distributed import init_distributed
    from naonet.run_folder import claim_run_folder
    from naonet.search.ranking import CHECKPOINT_NAME, UNREAD_SEARCH_OPTIONS, run_ranking_experiment

    refuse_flags(args, sorted(UNREAD_SEARCH_OPTIONS), "nao search",
                 listed_by="the ranking experiment trains one supernet once and scores a "
                 "sample of the table; nao correlate --help lists its options")
    config, keep = ranking_config(args)
    args.resumes = keep  # from the folder's checkpoint; without one a rerun starts over
    search = config.search
    table = load_table(config.reference, search.space, every_cell=False)  # it samples cells
    # Under torchrun the first process writes everything; the others only train.
    context = init_distributed(search.device)
    writes = keep and context.is_main
    if writes:  # an unusable folder is refused before minutes of training, not after
        claim_run_folder(search.output, "correlate")
    # Every scored point is kept as it comes: a run stopped at a time limit still leaves
    # its summary (marked unfinished) and score files; its checkpoint (after every epoch)
    # lets the same command resume it.
    progress = ((lambda partial: write_experiment(Path(search.output), config, partial,
                                                  finished=False)) if writes else None)
    result = run_ranking_experiment(
        config, table, log=lambda line: print(line, file=sys.stderr, flush=True),
        progress=progress, checkpoint=Path(search.output) / CHECKPOINT_NAME if keep else None)
    if not context.is_main:
        return 0
    print(f"supernet C {search.channels}, {counted(search.layers, 'cell')} per stage, "
          f"{counted(search.supernet_epochs, 'epoch')} on {search.train_subset or 'all'} "
          "training "
          f"images{f' at {search.image_size} px' if search.image_size else ''}, paths "
          f"sampled from {'every cell' if config.train_on == 'space' else 'the sample'}; "
          f"{config.sample_size} architectures scored ({search.score_metric}) on "
          f"{'the same' if search.scoring == 'fixed' else 'their own random'} "
          f"{result.scoring_images} held-out images, against "
          f"{config.metric}")
    print(f"{'ranking':<18}{'kendall tau':>13}{'spearman':>10}{'pairwise':>10}{'seconds':>9}")
    baseline = result.parameter_report
    print(f"{'parameter count':<18}{baseline.kendall_tau:>13.4f}{baseline.spearman_rho:>10.4f}"
          f"{baseline.pairwise_accuracy:>10.4f}{'':>9}")
    for sampling in result.samplings:
        report = sampling.report
        print(f"{'supernet ' + sampling.sampling:<18}{report.kendall_tau:>13.4f}"
              f"{report.spearman_rho:>10.4f}{report.pairwise_accuracy:>10.4f}"
              f"{sampling.seconds:>9.1f}")
    if writes:
        write_experiment(Path(search.output), config, result)
        print(f"scores and summary: {search.output}")
    return 0


def write_experiment(folder: Path, config, result, finished: bool = True) -> None:
    """Score files (``nao correlate`` recomputes everything from them), the parameter
    counts, and a summary with the config, every statistic and the tau-budget curve;
    ``finished`` is false while the experiment is still training (a partial result)."""
    from naonet.files import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    names = [arch.to_string() for arch in result.architectures]
    write_scores(folder / "reference.txt", zip(names, result.reference))
    write_scores(folder / "parameters.txt", zip(names, result.parameter_counts))
    for sampling in result.samplings:
        write_scores(folder / f"scores_{sampling.sampling}.txt", zip(names, sampling.scores))
    summary = {"config": config.to_dict(), "revision": code_revision(), "finished": finished,
               "scoring_images": result.scoring_images,
               "parameter_count": result.parameter_report.to_dict(),
               "samplings": {s.sampling: {**s.report.to_dict(), "losses": s.losses,
                                          "curve": [asdict(point) for point in s.curve],
                                          "seconds": s.seconds} for s in result.samplings}}
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1) + "\n")
