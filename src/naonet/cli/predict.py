"""``nao predict CHECKPOINT IMAGE...``: the most likely classes of each image.

An argument that is a folder stands for the image files under it, its sub-folders
included, in sorted order (the files a class folder gives training).

Images are preprocessed as ``nao eval`` preprocesses its test images (the size and
normalisation of the data set the network was trained on). Class names come from the
checkpoint (``nao train`` stores them; released CIFAR-10 files get CIFAR-10's names);
without them the output indices are printed. Results are printed a batch of images at a
time; a file that cannot be read is named on stderr and skipped (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import sys

from naonet.cli.options import add_model_file_flags, integer_flag
from naonet.errors import UserError

IMAGES_PER_BATCH = 64


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="top-5 classes of image files",
                                   description=__doc__)
    parser.add_argument("checkpoint", help="naonet or released .pt file")
    parser.add_argument("images", nargs="+",
                        help="image files (JPEG, PNG, ...) or folders of them")
    parser.add_argument("--top-k", type=integer_flag, default=5, help="classes shown per image")
    add_model_file_flags(parser)
    parser.add_argument("--image-size", type=integer_flag, default=0,
                        help="input size (default: the size it was trained at)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="one JSON line per image")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Classify the images a batch at a time, printing each batch's results as it goes
    (memory holds one batch, not every image). A file that cannot be read is named on
    stderr and skipped (with ``--json``, its line says so: one line per image, in order);
    the exit status is then 2."""
    from naonet.cli.eval import load_network_file
    from naonet.distributed import resolve_device

    if args.top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {args.top_k}")
    if args.image_size < 0:
        raise UserError(f"--image-size must be >= 0, got {args.image_size}")
    loaded, dataset = load_network_file("predict", args)
    device = resolve_device(args.device)
    network = loaded.network.to(device).eval()
    images = image_paths(args.images)
    skipped = 0
    for start in range(0, len(images), IMAGES_PER_BATCH):
        read = read_images(images[start:start + IMAGES_PER_BATCH], dataset,
                           args.image_size or loaded.image_size)
        inputs = [prepared for _, prepared in read if not isinstance(prepared, str)]
        found = iter(probabilities(network, inputs, device) if inputs else [])
        for path, prepared in read:
            if isinstance(prepared, str):  # the reason it was not read
                skipped += 1
                print_failure(path, prepared, args.json)
            else:
                print_prediction(path, next(found), loaded.classes, args.top_k, args.json)
        sys.stdout.flush()  # a long list shows its results as they come
    return 2 if skipped else 0


def image_paths(arguments: list[str]) -> list[str]:
    """The images the arguments name: a file as given, a folder as the image files under
    it (sorted, sub-folders included). A folder without images stays, to be named."""
    from pathlib import Path

    from naonet.data.sources import image_files

    paths = []
    for argument in arguments:
        found = image_files(Path(argument)) if Path(argument).is_dir() else []
        paths.extend(map(str, found) if found else [argument])
    return paths


def read_images(paths: list[str], dataset: str, size: int) -> list[tuple[str, object]]:
    """Each path with its prepared input, or with why it could not be read."""
    from pathlib import Path

    from naonet.cli.main import one_line
    from naonet.data import prepare_image
    from naonet.data.sources import holds_no_images

    read = []
    for path in paths:
        if Path(path).is_dir():  # image_paths left it: nothing in it to classify
            read.append((path, f"folder {holds_no_images(path)}"))
            continue
        try:
            read.append((path, prepare_image(path, dataset, size)))
        except UserError as error:
            read.append((path, one_line(error)))
    return read


def probabilities(network, inputs: list, device):
    """The softmax of the network's logits for a batch of prepared images (on the CPU)."""
    import torch

    with torch.no_grad():
        logits = network(torch.stack(inputs).to(device))[0]
    return torch.softmax(logits.float(), dim=1).cpu()


def print_prediction(path: str, probabilities, classes, top_k: int, as_json: bool) -> None:
    """One image's ``top_k`` classes: a JSON line, or the path and one line a class."""
    top = probabilities.topk(min(top_k, probabilities.shape[0]))
    names = classes or [f"class {index}" for index in range(probabilities.shape[0])]
    ranked = [(names[int(index)], float(value)) for value, index in zip(top.values,
                                                                        top.indices,
                                                                        strict=True)]
    if as_json:
        print(json.dumps({"image": path, "top": [{"class": name, "probability": value}
                                                 for name, value in ranked]}))
    else:
        print(path)
        for name, value in ranked:
            print(f"  {100 * value:6.2f} %  {name}")


def print_failure(path: str, reason: str, as_json: bool) -> None:
    """An image that could not be read: named on stderr, and with ``as_json`` a line of
    its own in the output, so that the lines stay one per image."""
    print(f"nao predict: error: {reason}; skipped", file=sys.stderr, flush=True)
    if as_json:
        print(json.dumps({"image": path, "error": reason}))
