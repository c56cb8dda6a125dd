"""``nao correlate``: how well one scoring of architectures ranks like another.

``nao correlate A B`` compares two score files (text ``ARCH SCORE`` lines or CSV) on
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
from pathlib import Path

from naonet.analysis.correlation import correlate
from naonet.analysis.scores import matched, read_scores, write_scores
from naonet.errors import UserError
from naonet.nb201 import VALIDATION_METRICS

DEFAULT_TOP_K = "5,10"


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
    experiment = parser.add_argument_group("supernet experiment (--supernet)")
    experiment.add_argument("--supernet", action="store_true",
                            help="run the supernet ranking experiment instead of "
                                 "comparing files")
    experiment.add_argument("--evaluator", metavar="table:PATH",
                            help="the NAS-Bench-201 table to compare with")
    experiment.add_argument("--data", help="CIFAR-10 folder or archive")
    experiment.add_argument("--dataset", default="cifar10",
                            help="data set name for the loader (default cifar10)")
    experiment.add_argument("--epochs", type=int, default=10,
                            help="supernet training epochs per sampling (default 10)")
    experiment.add_argument("--sampling", default="uniform,balanced",
                            help="comma-separated samplings (default uniform,balanced)")
    experiment.add_argument("--archs", type=int, default=100,
                            help="architectures scored (default 100)")
    experiment.add_argument("--train-size", type=int, default=25_000,
                            help="training images of the split (default 25000)")
    experiment.add_argument("--valid-size", type=int, default=25_000,
                            help="held-out training images to score on (default 25000, "
                                 "the benchmark's split sizes)")
    experiment.add_argument("--score-batches", type=int, default=0,
                            help="validation batches used to score (default 0: all)")
    experiment.add_argument("--channels", type=int, default=16,
                            help="supernet width C (default 16, the benchmark's)")
    experiment.add_argument("--cells", type=int, default=5,
                            help="cells per stage (default 5, the benchmark's)")
    experiment.add_argument("--batch-size", type=int, default=64)
    experiment.add_argument("--learning-rate", type=float, default=0.025)
    experiment.add_argument("--metric", choices=sorted(VALIDATION_METRICS),
                            default="valid_200ep",
                            help="table column to compare with (default valid_200ep)")
    experiment.add_argument("--seed", type=int, default=0)
    experiment.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    experiment.add_argument("--output", default=None, metavar="DIR",
                            help="write score files and a JSON summary to DIR")
    parser.set_defaults(handler=run)


def parse_top_k(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
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
    if len(args.files) != 2:
        raise UserError(f"give two score files (A and the reference B), got "
                        f"{len(args.files)}; or run the experiment with --supernet")
    scores = read_scores(args.files[0], args.column_a)
    reference = read_scores(args.files[1], args.column_b)
    _, a, b = matched(scores, reference)
    report = correlate(a, b, parse_top_k(args.top_k))
    print(f"A: {args.files[0]} ({len(scores)})  B: {args.files[1]} ({len(reference)})")
    print("\n".join(report.lines()))
    return 0


def run_experiment(args: argparse.Namespace) -> int:
    from naonet.cli.table_search import load_table
    from naonet.nb201.ranking import RankingExperimentConfig, run_ranking_experiment

    if not args.evaluator or not args.data:
        raise UserError("--supernet needs --evaluator table:PATH and --data DIR")
    config = RankingExperimentConfig(
        epochs=args.epochs, samplings=tuple(s.strip() for s in args.sampling.split(",")),
        sample_size=args.archs, channels=args.channels, cells_per_stage=args.cells,
        learning_rate=args.learning_rate, score_batches=args.score_batches,
        metric=args.metric, top_k=parse_top_k(args.top_k), seed=args.seed)
    table = load_table(args.evaluator, "nb201")
    device = resolve_device(args.device)
    data = load_split(args, device)
    result = run_ranking_experiment(config, table, data.train, data.valid, data.num_classes,
                                    device, log=lambda line: print(line, file=sys.stderr,
                                                                   flush=True))
    print(f"supernet C {config.channels}, {config.cells_per_stage} cells per stage, "
          f"{config.epochs} epochs on {args.train_size} images; {config.sample_size} "
          f"architectures scored on {args.valid_size} held-out images, against "
          f"{config.metric}")
    print(f"{'sampling':<10}{'kendall tau':>13}{'spearman':>10}{'pairwise':>10}{'seconds':>9}")
    for sampling in result.samplings:
        report = sampling.report
        print(f"{sampling.sampling:<10}{report.kendall_tau:>13.4f}{report.spearman_rho:>10.4f}"
              f"{report.pairwise_accuracy:>10.4f}{sampling.seconds:>9.1f}")
    if args.output:
        write_experiment(Path(args.output), config, result)
        print(f"scores and summary: {args.output}")
    return 0


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None


def load_split(args: argparse.Namespace, device):
    """Training and held-out batches from the training set of ``--data``."""
    from naonet.data import DataConfig, build_data

    config = DataConfig(dataset=args.dataset, data=args.data, batch_size=args.batch_size,
                        eval_batch_size=max(args.batch_size, 256), valid_size=args.valid_size,
                        train_subset=args.train_size, test_subset=1, pipeline="device")
    return build_data(config, device, seed=args.seed)


def write_experiment(folder: Path, config, result) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = [arch.to_string() for arch in result.architectures]
    write_scores(folder / "reference.txt", zip(names, result.reference))
    for sampling in result.samplings:
        write_scores(folder / f"scores_{sampling.sampling}.txt", zip(names, sampling.scores))
    summary = {"config": config.to_dict(),
               "samplings": {s.sampling: {**s.report.to_dict(), "losses": s.losses,
                                          "seconds": s.seconds} for s in result.samplings}}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
