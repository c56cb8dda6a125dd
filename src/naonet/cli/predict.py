"""``nao predict CHECKPOINT IMAGE...``: the most likely classes of each image.

Images are preprocessed as ``nao eval`` preprocesses its test images (the size and
normalisation of the data set the network was trained on). Class names come from the
checkpoint (``nao train`` stores them; released CIFAR-10 files get CIFAR-10's names);
without them the output indices are printed.
"""

from __future__ import annotations

import argparse
import json

from naonet.cli.options import add_model_file_flags
from naonet.errors import UserError
from naonet.options import whole_number

IMAGES_PER_BATCH = 64


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="top-5 classes of image files",
                                   description=__doc__)
    parser.add_argument("checkpoint", help="naonet or released .pt file")
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--top-k", type=whole_number, default=5, help="classes shown per image")
    add_model_file_flags(parser)
    parser.add_argument("--image-size", type=whole_number, default=0,
                        help="input size (default: the size it was trained at)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="one JSON line per image")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from naonet.cli.eval import dataset_of, note_another_size
    from naonet.compat.model_file import load_model
    from naonet.data import prepare_image
    from naonet.distributed import resolve_device

    if args.top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {args.top_k}")
    if args.image_size < 0:
        raise UserError(f"--image-size must be >= 0, got {args.image_size}")
    loaded = load_model(args.checkpoint, arch=args.arch, space=args.space)
    dataset = dataset_of(loaded, args.dataset, args.checkpoint)
    note_another_size("predict", loaded, dataset, args.image_size)
    size = args.image_size or loaded.image_size
    # Every image is read before anything is printed: a bad file fails the whole call.
    inputs = torch.stack([prepare_image(path, dataset, size) for path in args.images])
    device = resolve_device(args.device)
    network = loaded.network.to(device).eval()
    with torch.no_grad():
        probabilities = torch.cat([
            torch.softmax(network(chunk.to(device))[0].float(), dim=1).cpu()
            for chunk in inputs.split(IMAGES_PER_BATCH)])
    top = probabilities.topk(min(args.top_k, probabilities.shape[1]), dim=1)
    names = loaded.classes or [f"class {index}" for index in range(probabilities.shape[1])]
    for path, values, indices in zip(args.images, top.values, top.indices, strict=True):
        ranked = [(names[int(index)], float(value)) for value, index in zip(values, indices,
                                                                            strict=True)]
        if args.json:
            print(json.dumps({"image": path, "top": [{"class": name, "probability": value}
                                                     for name, value in ranked]}))
        else:
            print(path)
            for name, value in ranked:
                print(f"  {100 * value:6.2f} %  {name}")
    return 0
