"""``nao train``: train an architecture with a published recipe or your own settings.

Rerunning the same command resumes from the run folder's last checkpoint. Launch with
``torchrun --nproc_per_node N -m naonet.cli.main train ...`` for N processes: each uses
the preset's batch size and the learning rate is multiplied by N.
"""

from __future__ import annotations

import argparse

from naonet.cli.options import (
    SHARED_HELP,
    add_dataclass_flags,
    add_print_config_flag,
    default_output,
    print_config,
)

HELP = {
    **SHARED_HELP,
    "arch": "architecture name (naonet-v2), string of integers, or any line of arch_pool "
            "(a NAS-Bench-201 cell trains as the benchmark's network: --preset "
            "nb201-cifar10 for its size and recipe)",
    "space": "search space of an integer architecture string (small or middle; a "
             "NAS-Bench-201 cell says its own)",
    "dataset": "cifar10, cifar100, imagenet or folder (any train/ + test/ image folders)",
    "valid_size": "hold out this many training images for choosing best.pt (data of train/ "
                  "alone trains with it: its validation figures are the run's)",
    "train_subset": "train on only this many images (0: all)",
    "test_subset": "evaluate on only this many test images (0: all)",
    "channels": "width C of the first cells",
    "layers": "cells per stage N",
    "aux_weight": "weight of the auxiliary head's loss",
    "keep_prob": "1 - dropout before the classifier",
    "drop_path_keep_prob": "keep probability of drop path at the last cell and step",
    "lr_schedule": "cosine or exponential",
    "nesterov": "Nesterov momentum (NAS-Bench-201's recipe, --preset nb201-cifar10)",
    "grad_clip": "largest gradient norm (0: no clipping)",
    "scale_lr_with_world_size": "multiply lr and lr-min by the number of processes",
    "amp": "mixed precision: auto (bf16 on CUDA, float32 elsewhere), none, bf16 or fp16",
    "channels_last": "NHWC memory layout (faster on these CPUs and on recent GPUs)",
    "compile": "torch.compile the network: auto (CUDA only), on or off; falls back to eager",
    "host_allocator": "auto, retain (keep freed host memory: much faster CPU steps) or system",
    "output": "run folder (checkpoints, metrics.jsonl, config.yaml, result.json) "
              "(default: runs/PRESET, or runs/train without --preset)",
    "tensorboard": "write per-epoch scalars for TensorBoard to OUTPUT/tensorboard",
}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train an architecture (NAONet-V2 presets, resumable, multi-GPU)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from naonet.training.config import PRESETS, TrainConfig

    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="start from a published recipe (flags and --config override it)")
    parser.add_argument("--config", default=None, help="YAML or JSON file of options")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (a display choice, not a config key)")
    add_print_config_flag(parser)
    add_dataclass_flags(parser, TrainConfig, HELP)
    parser.set_defaults(handler=run, resumes=True)


def run(args: argparse.Namespace) -> int:
    from naonet.cli.info import check_architecture_argument
    from naonet.spaces import resolve_architecture
    from naonet.training.config import field_names, load_config_file, resolve_config
    from naonet.training.run import train

    flags = {name: getattr(args, name) for name in field_names()}
    file_values = load_config_file(args.config) if args.config else {}
    check_architecture_argument(flags.get("arch") or file_values.get("arch"))
    default_output(flags, file_values, args.preset, "train")
    config = resolve_config(args.preset, file_values, flags)
    space = resolve_architecture(config.arch, config.space).space  # the notes' subject
    note_another_spaces_preset(args.preset, config, space)
    note_another_skeletons_preset(args.preset, config)
    note_unused_options(config, space)
    if args.print_config:
        return print_config(config)
    train(config, show_progress=not args.no_progress)
    return 0


def note_another_spaces_preset(preset: str | None, config, space) -> None:
    """A preset is the recipe of one space's networks (its architecture's); given an
    architecture of another space it still trains, but say which recipe fits it."""
    import sys

    from naonet.spaces import resolve_architecture
    from naonet.training.config import PRESETS

    if preset is None:
        return
    recipe_space = resolve_architecture(PRESETS[preset]["arch"]).space
    from naonet.spaces.protocol import training_recipe

    recommended = training_recipe(space, config.dataset, config.image_size)
    # middle shares small's recipe: no note that names the preset given as the fit
    if space.name != recipe_space.name and recommended.split()[:2] != ["--preset", preset]:
        print(f"nao train: note: --preset {preset} is the recipe of {recipe_space.name} "
              f"networks; a {space.name} architecture's is {recommended}", file=sys.stderr,
              flush=True)


def note_unused_options(config, space) -> None:
    """A note on stderr for options the network of an architecture of ``space`` has no
    use for (a NAS-Bench-201 cell's: an auxiliary head, dropout, drop path): it still
    trains."""
    import sys

    from naonet.training.run import unused_options_note

    note = unused_options_note(config, space)
    if note is not None:
        print(f"nao train: note: {note}", file=sys.stderr, flush=True)


def note_another_skeletons_preset(preset: str | None, config) -> None:
    """A preset of one network skeleton (the ImageNet recipe's stride-8 stem, or CIFAR's)
    on data that builds the other (a folder's images at 64 px or less build the CIFAR
    network): it still trains, but say so and how to get the preset's network."""
    import sys

    from naonet.data import get_dataset_spec
    from naonet.data.registry import SMALL_IMAGE_MAX
    from naonet.training.config import PRESETS

    if preset is None or config.dataset != "folder":
        return
    wanted = get_dataset_spec(PRESETS[preset]["dataset"]).skeleton
    spec = get_dataset_spec(config.dataset, config.image_size or None)
    if spec.skeleton != wanted:
        size = (f"--image-size {SMALL_IMAGE_MAX + 1} or more (224 as published)"
                if wanted == "imagenet" else f"--image-size {SMALL_IMAGE_MAX} or less")
        print(f"nao train: note: --preset {preset} is the recipe of the {wanted} network; "
              f"folder images at {spec.image_size} px train the {spec.skeleton} network "
              f"({size} for the {wanted} one)", file=sys.stderr, flush=True)
