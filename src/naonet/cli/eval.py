"""``nao eval CHECKPOINT``: top-1 and top-5 accuracy of a trained network on a test set.

Works with naonet checkpoints and with the released NAO-V2 checkpoints (their weights are
renamed on the fly; give --arch if the file does not record it).
"""

from __future__ import annotations

import argparse
import json

from naonet.cli.options import add_model_file_flags, integer_flag
from naonet.errors import UserError
from naonet.runtime import AMP_MODES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="top-1/top-5 of a checkpoint on a test set",
                                   description=__doc__)
    parser.add_argument("checkpoint", help="naonet or released .pt file")
    parser.add_argument("--data", default="data", help="data folder or archive")
    add_model_file_flags(parser)
    parser.add_argument("--batch-size", type=integer_flag, default=256)
    parser.add_argument("--test-subset", type=integer_flag, default=0)
    parser.add_argument("--image-size", type=integer_flag, default=0)
    parser.add_argument("--workers", type=integer_flag, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="none", choices=AMP_MODES,
                        help="mixed precision (auto: bf16 on CUDA where supported)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from naonet.data import DataConfig, build_test_data
    from naonet.distributed import resolve_device
    from naonet.runtime import check_worker_count
    from naonet.training import Precision, evaluate
    from naonet.training.engine import accuracy_text

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_worker_count(args.workers)
    loaded, dataset = load_network_file("eval", args)
    device = resolve_device(args.device)
    precision = Precision.from_name(args.amp, device)  # fp16 off CUDA: said before the data
    data = build_test_data(DataConfig(dataset=dataset, data=args.data,
                                      eval_batch_size=args.batch_size,
                                      test_subset=args.test_subset, workers=args.workers,
                                      image_size=args.image_size or loaded.image_size), device)
    check_test_classes(loaded, data.classes, dataset)
    stats = evaluate(loaded.network.to(device), data.batches, precision)
    result = {"checkpoint": str(args.checkpoint), "dataset": dataset, "images": stats.images,
              "top1": stats.top1, "loss": stats.loss,
              "top5": stats.top5,  # null with five classes or fewer
              "arch": loaded.architecture.to_qualified_string()}
    if args.json:
        print(json.dumps(result))
    else:
        text = accuracy_text(stats.top1, stats.top5)
        print(f"{dataset} test: {text} on {stats.images} images")
    return 0


def load_network_file(command: str, args: argparse.Namespace):
    """The network file ``nao command`` runs (eval, predict, export: ``args.checkpoint``
    with the flags of ``add_model_file_flags`` and ``--image-size``), and the data set it
    runs on; another size than the trained one is noted."""
    from naonet.compat.model_file import load_model

    loaded = load_model(args.checkpoint, arch=args.arch, space=args.space)
    dataset = dataset_of(loaded, args.dataset, args.checkpoint)
    note_another_size(command, loaded, dataset, args.image_size)
    return loaded, dataset


def note_another_size(command: str, loaded, dataset: str, asked: int) -> None:
    """A note on stderr where ``--image-size`` is not the size the network was trained at:
    it runs at any size, but is only as accurate as trained at that one."""
    import sys

    from naonet.compat.model_file import trained_size
    from naonet.data.registry import get_dataset_spec

    trained = trained_size(loaded, dataset)
    if asked > 0 and asked != trained:  # 0: the trained size; below, refused elsewhere
        # a folder data set's preprocessing follows the size: say where it is not the
        # network's own
        was_small = get_dataset_spec(dataset, trained).small_images
        now_small = get_dataset_spec(dataset, asked).small_images
        switch = ("" if was_small == now_small else
                  ", where images are prepared as small ones (resized whole, not centre-"
                  "cropped)" if now_small else
                  ", where images are prepared as large ones (resized and centre-cropped, "
                  "not resized whole)")
        print(f"nao {command}: note: the network was trained at {trained} px; running it at "
              f"{asked} px (--image-size){switch}", file=sys.stderr, flush=True)


def dataset_of(loaded, dataset: str | None, checkpoint: str) -> str:
    """The data set named on the command line, else the one the checkpoint records, else
    the one its network's shape names (a released file records none)."""
    check_recorded_dataset(loaded, dataset, checkpoint)
    dataset = dataset or loaded.dataset or dataset_from_network(loaded)
    if dataset is None:
        raise UserError(f"{checkpoint} does not say which data set it was trained on; "
                        "pass --dataset")
    return dataset


def check_recorded_dataset(loaded, dataset: str | None, checkpoint: str) -> None:
    """A UserError if ``--dataset`` contradicts the data set the file records, or names a
    data set whose images or classes the network cannot take (it would preprocess with
    another data set's normalisation and label with its classes)."""
    if dataset and loaded.dataset and dataset != loaded.dataset:
        raise UserError(f"{checkpoint} was trained on {loaded.dataset}, not {dataset}; drop "
                        "--dataset (the file's is used)")
    if not dataset:
        return
    from naonet.data.registry import get_dataset_spec

    spec, config = get_dataset_spec(dataset), loaded.network.config
    if spec.num_classes is None:  # a folder: its classes and image size are the data's
        return
    if not network_fits(spec, config):
        fitting = dataset_from_network(loaded)
        raise UserError(
            f"{checkpoint} holds a network for {config.skeleton} images with "
            f"{config.num_classes} classes; {dataset} has {spec.skeleton} images with "
            f"{spec.num_classes} classes: " + (f"pass --dataset {fitting}" if fitting else
                                                "pass --dataset folder with its images"))


def dataset_from_network(loaded) -> str | None:
    """The one named data set whose images and classes the network fits, if any."""
    from naonet.data.registry import DATASETS

    fitting = [name for name, spec in DATASETS.items()
               if network_fits(spec, loaded.network.config)]
    return fitting[0] if len(fitting) == 1 else None


def network_fits(spec, config) -> bool:
    """Whether a network of ``config`` takes the images and classes of data set ``spec``."""
    return (spec.skeleton, spec.num_classes) == (config.skeleton, config.num_classes)


def check_test_classes(loaded, classes: list[str], dataset: str) -> None:
    """Labels are class positions: the test folders must hold the network's classes."""
    from naonet.data.registry import class_difference, same_classes

    expected = loaded.network.config.num_classes
    difference = (class_difference(loaded.classes, classes, "the network", "the test images")
                  if loaded.classes is not None else None)
    if len(classes) != expected:
        named = f" ({difference})" if difference is not None else ""
        raise UserError(f"the network has {expected} classes but the {dataset} test images "
                        f"have {len(classes)}{named}; check --data" + (
                            "" if loaded.dataset else " and --dataset"))
    if loaded.classes is not None and not same_classes(classes, loaded.classes):
        raise UserError(f"the test classes differ from the network's ({difference}); make the "
                        "class folders match")
