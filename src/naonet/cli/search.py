"""``nao search``: the NAO-V2 architecture search (weight-sharing supernet + controller).

Writes to the run folder (--output): arch_pool (every architecture, best first),
arch_pool.final (the re-ranked top 5), pool.json (every score), rounds.jsonl,
scores.png and a resumable checkpoint. Each line of arch_pool.final is accepted by
'nao train --arch' as it is (a NAS-Bench-201 cell trains as the benchmark's network;
'nao info LINE --reference table:CSV' prints what the benchmark measured of it):

  nao search --preset quick-cifar10 --data cifar10-jpg.tar.gz --output runs/search
  nao train --preset naonet-v2-cifar10 --arch "$(head -n 1 runs/search/arch_pool.final)" \\
      --data cifar10-jpg.tar.gz

Rerunning the same command after an interruption resumes where it stopped. For N
processes launch it with torchrun (torchrun --nproc_per_node N -m naonet.cli.main
search ...): the supernet trains data-parallel (lr multiplied by N), scoring is
shared, the controller runs on rank 0. With --evaluator table:PATH the search looks
scores up in a benchmark table instead (--space nb201); --controller-epochs and --seed
apply to both kinds of search.
"""

from __future__ import annotations

import argparse

from naonet.cli.options import (
    SHARED_HELP,
    add_dataclass_flags,
    add_print_config_flag,
    add_told_apart,
    default_output,
    fill_defaults,
    print_config,
    refuse_flags,
    refuse_torchrun,
)
from naonet.search.reference import TABLE_PREFIX

SUPERNET_EVALUATOR = "supernet"

HELP = {
    **SHARED_HELP,
    "space": "search space: small (NAO-V2), middle, nb201 (NAS-Bench-201), or one an "
             "installed package offers (naonet.spaces entry points); a table search "
             "(--evaluator table:PATH) searches nb201, the table's space, a one-shot search "
             "the space given",
    "score_metric": "supernet score: accuracy, or loss (minus the mean cross-entropy)",
    "update_off_path": "SGD keeps applying momentum and weight decay to parameters off the "
                       "sampled path (gradients zeroed, as released)",
    "reference": "table:PATH of a benchmark (nb201): records each round's Kendall tau and "
                 "the true accuracy of the best architectures; never seen by the search",
    "dataset": "cifar10, cifar100, imagenet or folder (any nao train data set)",
    "valid_size": "training images held out to score architectures on",
    "train_subset": "train on only this many of the remaining images (0: all)",
    "cutout": "cutout size for supernet and re-rank training (0: none)",
    "channels": "supernet width C",
    "layers": "supernet cells per stage N",
    "keep_prob": "supernet: 1 - dropout before the classifier",
    "drop_path_keep_prob": "supernet: drop path keep probability at the last cell and step",
    "sampling": "how a training step picks its architecture: balanced (by parameter count, "
                "NAO-V2) or uniform",
    "supernet_pool": "what a round's supernet training samples from: children (the "
                     "round's new architectures, released), all (the pool so far too) "
                     "or space (every architecture; NAS-Bench-201 only)",
    "few_shot_split": "few-shot supernet: one copy per choice at this position of the "
                      "space's integer coding (nb201: edge 0-5 in the string's order, 3 "
                      "is 0 -> 3; small/middle: 4 a node, input op input op, the normal "
                      "cell's nodes then the reduction cell's); 'none': one supernet",
    "few_shot_after": "rounds of the one supernet before the few-shot split",
    "rounds": "search rounds (supernet training, scoring, controller)",
    "seed_pool_size": "random architectures of the first round",
    "seed_pool_file": ("start from the architectures of this file instead (one a line; '#' "
                       "starts a comment)"),
    "new_architectures": "architectures the controller generates per round",
    "top_seeds": "generate from this many best architectures of the pool",
    "max_lambda": "largest step size tried when generating (released: 51)",
    "score_transform": "the controller learns raw scores (released) or their ranks",
    "fresh_controller": "re-initialise the controller every round (released: keep one)",
    "fill": "a round the decoder leaves short: none (released), random new ones, "
            "mutation (new mutations of the best) or predicted (the mutations the "
            "predictor rates highest)",
    "supernet_epochs": "supernet epochs per round",
    "batch_size": "training batch (supernet and re-rank), per process",
    "lr": "maximum learning rate (cosine schedule), supernet and re-rank",
    "lr_min": "minimum learning rate of the cosine schedule",
    "weight_decay": "SGD weight decay",
    "grad_clip": "largest gradient norm of the supernet and the re-rank (0: no clipping)",
    "restart_schedule": "restart the cosine schedule every round (NAO-V2); else one "
                        "schedule over all rounds",
    "reinit_supernet": "re-initialise the supernet weights at every round",
    "scale_lr_with_world_size": "multiply the learning rates by the number of processes",
    "scoring": "fixed: every architecture on the same validation batches; "
               "per-architecture: a new random batch each (the released behaviour)",
    "eval_batch_size": "scoring batch size (the released 500)",
    "eval_batches": "scoring batches per architecture",
    "controller_trade_off": "controller loss = t * MSE + (1 - t) * NLL",
    "controller_valid_fraction": "part of the pool held out to report the controller's "
                                 "pairwise accuracy and Hamming distance",
    "controller_augment": "training architectures x this many equivalent variants",
    "rerank_top": "re-rank this many best architectures by training from scratch (0: none)",
    "rerank_epochs": "epochs of each re-rank training",
    "rerank_channels": "re-rank network width C",
    "rerank_layers": "re-rank network cells per stage N",
    "rerank_aux_weight": "re-rank auxiliary head loss weight (0: no auxiliary head)",
    "rerank_common_seeds": "every re-ranked architecture starts from the same seed and "
                           "trains on the same batches (no: a seed of its own each)",
    "rerank_repeats": "train each re-ranked architecture this many times from other seeds; "
                      "its accuracy is the mean",
    "rerank_processes": "CPU processes that run the re-rank's trainings at once (the same "
                        "results as one; each gets its share of the threads)",
    "rerank_turns": "re-rank the best of each choice at this position of the space's "
                    "coding in turn (a few-shot supernet: its split); 'none': the best by "
                    "score",
    "amp": "mixed precision of training: none or bf16",
    "output": "run folder (arch_pool, arch_pool.final, pool.json, scores.png, checkpoint) "
              "(default: runs/PRESET, or runs/search without --preset)",
    "threads": "torch threads on the CPU (0: torch's default, OMP_NUM_THREADS or one per "
               "core); the nb201 CPU presets set 1, faster there under passive OpenMP "
               "waiting",
    "plot": "write scores.png and pareto.png (needs matplotlib)",
}


def _table_search():
    """The benchmark-table search module, or the import error that keeps it away."""
    try:
        from naonet.cli import table_search
    except ImportError as error:
        return None, error
    return table_search, None


# What each preset is for (search/config.py holds what it sets, and why).
PRESET_HELP = {
    "nao-v2-cifar10": "the released search on CIFAR-10, for a GPU (about a day)",
    "quick-cifar10": "the same code path at a tiny size, about 3 minutes on 2 CPU cores",
    "quick-nb201": "one-shot NAO-V2 on NAS-Bench-201 at a tiny size, under 2 minutes on "
                   "2 CPU cores",
    "nb201-rank-cpu": "the NAS-Bench-201 supernet recipe of 'nao correlate --supernet' for "
                      "2 CPU cores",
    "nb201-search-cpu": "one-shot NAO-V2 on NAS-Bench-201 at that recipe's scale, about "
                        "40 minutes on 2 CPU cores",
    "nb201-rank-gpu": "the NAS-Bench-201 supernet recipe at the paper's scale, for a GPU",
}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "search", help="search architectures with NAO-V2 (resumable, multi-GPU)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from naonet.search.config import PRESETS, SearchConfig

    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="; ".join(f"{name}: {PRESET_HELP[name]}" for name in PRESETS))
    parser.add_argument("--config", default=None, help="YAML or JSON file of options")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (a display choice, not a config key)")
    add_print_config_flag(parser)
    parser.add_argument("--evaluator", default=SUPERNET_EVALUATOR,
                        help="supernet (one-shot weight sharing) or table:PATH (scores from "
                             "a benchmark table, with --space nb201)")
    table_defaults = _add_table_arguments(parser, SearchConfig)
    add_dataclass_flags(parser.add_argument_group("one-shot search (--evaluator supernet)"),
                        SearchConfig, HELP, skip=tuple(table_defaults))
    parser.set_defaults(handler=run, table_defaults=table_defaults)


def _add_table_arguments(parser: argparse.ArgumentParser, config_class) -> dict:
    """Add the table search's options; returns each with its table default. Every one
    defaults to None here, so that a flag given is told from one left out (the one-shot
    search refuses the table's own, and takes the shared ones' defaults from its
    preset)."""
    table, _ = _table_search()
    if table is None:
        return {}
    return add_told_apart(parser, table.add_table_search_arguments)


# The one-shot options the table search reads too (seed and device: --max-latency-ms).
TABLE_SEARCH_READS = ("seed", "device", "space")


def run(args: argparse.Namespace) -> int:
    from naonet.errors import UserError

    if args.evaluator.startswith(TABLE_PREFIX):
        refuse_torchrun("a table search")
        return _run_table_search(args)  # seconds long: a rerun starts over
    args.resumes = True
    if args.evaluator != SUPERNET_EVALUATOR:
        raise UserError(f"unknown --evaluator {args.evaluator!r}; use supernet or "
                        f"{TABLE_PREFIX}PATH")
    from naonet.constraints import check_latency_batch_read
    from naonet.search.config import field_names, load_config_file, resolve_search_config
    from naonet.search.loop import search

    refuse_flags(args, [name for name in args.table_defaults if name not in field_names()],
                 f"a table search (--evaluator {TABLE_PREFIX}PATH)")
    flags = {name: getattr(args, name, None) for name in field_names()}
    file_values = load_config_file(args.config) if args.config else {}
    default_output(flags, file_values, args.preset, "search")
    config = resolve_search_config(args.preset, file_values, flags)
    refuse_other_strategies_flags(args, config.strategy)
    check_latency_batch_read(flags.get("latency_batch"), config.max_latency_ms)
    if args.print_config:
        return print_config(config)
    note_a_presets_proxy_size(args.preset, file_values, flags, config)
    search(config, show_progress=not args.no_progress)
    return 0


def note_a_presets_proxy_size(preset: str | None, file_values: dict, flags: dict,
                              config) -> None:
    """A note where a preset's image size, a proxy of CIFAR's 32 px, becomes the size of
    a folder's images: they are read at it, and the training the search prints trains
    the found network at it (a user's trial trained at the preset's 16 px unawares)."""
    import sys

    from naonet.search.config import PRESETS

    proxy = PRESETS.get(preset or "", {}).get("image_size")
    if (config.dataset != "folder" or not proxy or "image_size" in file_values
            or flags.get("image_size") is not None):
        return
    print(f"nao search: note: --preset {preset}'s image size, {proxy} px, is a proxy for "
          f"CIFAR's 32 px; a folder's images are read at it, and the training this search "
          f"prints trains at it: pass --image-size N for another", file=sys.stderr,
          flush=True)


# The one-shot options only one strategy reads (the others' would be dropped silently).
EVOLUTION_OPTIONS = ("population_size", "sample_size")
NAO_OPTIONS = ("top_seeds", "score_transform", "fresh_controller", "fill", "max_lambda")
# the table search's NAO options (evolution's are the same two)
TABLE_NAO_OPTIONS = ("initial_queries", "candidates_per_round", "seed_count", "max_lambda",
                     "score_transform", "fill", "controller_epochs")


def refuse_other_strategies_flags(args: argparse.Namespace, strategy: str,
                                  nao: tuple[str, ...] | None = None) -> None:
    """A UserError for a flag of another strategy's than ``strategy`` (flags only: a run
    folder's config.yaml holds every option, and is given back as it is). ``nao``: NAO's
    options (default: the one-shot search's)."""
    from naonet.search.config import field_names

    if nao is None:
        nao = (*NAO_OPTIONS, *sorted(name for name in field_names()
                                     if name.startswith("controller_")))
    for names, owner in ((nao, "nao"), (EVOLUTION_OPTIONS, "evolution")):
        if strategy != owner:
            refuse_flags(args, names, f"--strategy {owner}",
                         f" or pass --strategy {owner} (this search runs {strategy})")


def _run_table_search(args: argparse.Namespace) -> int:
    from naonet.errors import UserError

    table, error = _table_search()
    if table is None:
        raise UserError(f"--evaluator {TABLE_PREFIX}PATH needs naonet.cli.table_search, which "
                        f"this installation lacks ({error}); reinstall naonet, or use "
                        f"--evaluator {SUPERNET_EVALUATOR}")
    from naonet.search.config import field_names

    one_shot_only = [name for name in ("preset", "config", "print_config", *field_names())
                     if name not in args.table_defaults and name not in TABLE_SEARCH_READS]
    one_shot = f"the one-shot search (--evaluator {SUPERNET_EVALUATOR})"
    refuse_flags(args, ["output"], one_shot,
                 "; a table search writes no run folder, --result-json FILE keeps its result")
    refuse_flags(args, one_shot_only, one_shot)
    refuse_other_strategies_flags(args, args.strategy or args.table_defaults["strategy"],
                                  TABLE_NAO_OPTIONS)
    fill_defaults(args, args.table_defaults)
    return table.run_table_search(args)
