"""``nao export CHECKPOINT OUT --format onnx|torchscript``: a trained network (naonet or
released checkpoint) as a standalone model file.

The model takes float32 images N x 3 x H x W preprocessed as ``nao predict`` does
(scaled to [0, 1], normalised with the data set's mean and standard deviation; both
recorded in the file) and returns the class logits. The file records the architecture,
class names, data set, input size and normalisation as metadata.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from naonet.cli.options import add_model_file_flags
from naonet.errors import UserError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="ONNX / TorchScript file of a network",
                                   description=__doc__)
    parser.add_argument("checkpoint", help="naonet or released .pt file")
    parser.add_argument("output", help="the file to write (.onnx or .pt)")
    parser.add_argument("--format", dest="export_format", default=None,
                        choices=["onnx", "torchscript"],
                        help="default: from the output's suffix (.onnx: onnx, else torchscript)")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="ONNX only: a fixed batch dimension (default 0: dynamic; "
                             "TorchScript always takes any batch)")
    parser.add_argument("--image-size", type=int, default=0,
                        help="input size (default: the size it was trained at)")
    add_model_file_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from naonet.cli.eval import dataset_of
    from naonet.compat.model_file import load_model
    from naonet.data import get_dataset_spec
    from naonet.export import ExportSpec, export_model

    if not args.output.strip():
        raise UserError("the output file name is empty; pass the file to write")
    for flag, value, zero in (("--batch-size", args.batch_size, "dynamic"),
                              ("--image-size", args.image_size, "the trained size")):
        if value < 0:
            raise UserError(f"{flag} must be >= 0 (0: {zero}), got {value}")
    export_format = args.export_format or ("onnx" if args.output.lower().endswith(".onnx")
                                           else "torchscript")
    if export_format == "torchscript" and args.batch_size:
        raise UserError("--batch-size fixes the batch of an ONNX file; a TorchScript file "
                        "takes any batch: drop --batch-size, or write .onnx")
    loaded = load_model(args.checkpoint, arch=args.arch, space=args.space)
    dataset = dataset_of(loaded, args.dataset, args.checkpoint)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)  # unusable: fail before work
    spec = get_dataset_spec(dataset, args.image_size or loaded.image_size or None)
    size = args.image_size or loaded.image_size or spec.image_size
    metadata = {"arch": loaded.architecture.to_qualified_string(), "dataset": dataset,
                "classes": loaded.classes or [], "image_size": size,
                "mean": list(spec.mean), "std": list(spec.std),
                "input": "float32 N x 3 x H x W, scaled to [0, 1] then (x - mean) / std",
                "output": "logits N x classes"}
    export_model(loaded.network, args.output, export_format,
                 ExportSpec(image_size=size, batch_size=args.batch_size), metadata)
    batch = args.batch_size or "dynamic"
    print(f"wrote {args.output}: {export_format}, input {batch} x 3 x {size} x {size}, "
          f"{loaded.network.config.num_classes} classes, {metadata['arch']}")
    return 0
