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

from naonet.cli.options import add_model_file_flags, check_output_file, integer_flag
from naonet.errors import UserError
from naonet.export import FORMAT_SUFFIXES, FORMATS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="ONNX / TorchScript file of a network",
                                   description=__doc__)
    parser.add_argument("checkpoint", help="naonet or released .pt file")
    parser.add_argument("output", help="the file to write (.onnx or .pt)")
    parser.add_argument("--format", dest="export_format", default=None,
                        choices=FORMATS,
                        help="default: from the output's suffix (" + "; ".join(
                            f"{', '.join(suffixes)}: {name}"
                            for name, suffixes in FORMAT_SUFFIXES.items()) + ")")
    parser.add_argument("--batch-size", type=integer_flag, default=0,
                        help="ONNX only: a fixed batch dimension (default 0: dynamic; "
                             "TorchScript always takes any batch)")
    parser.add_argument("--opset", type=integer_flag, default=0,
                        help="ONNX only: the operator set to write, for a runtime that "
                             "reads only older ones (default 0: the exporter's own)")
    parser.add_argument("--image-size", type=integer_flag, default=0,
                        help="input size (default: the size it was trained at)")
    add_model_file_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from naonet.cli.eval import load_network_file
    from naonet.compat.model_file import trained_size
    from naonet.data import get_dataset_spec
    from naonet.data.registry import preprocessing_text
    from naonet.export import ExportSpec, export_model, read_metadata
    from naonet.training.checkpoint import exported_format

    check_output_file(args.checkpoint, args.output,
                      lambda path: exported_format(path) is not None,
                      "a model nao export wrote (TorchScript or ONNX)")
    for flag, value, zero in (("--batch-size", args.batch_size, "dynamic"),
                              ("--image-size", args.image_size, "the trained size"),
                              ("--opset", args.opset, "the exporter's")):
        if value < 0:
            raise UserError(f"{flag} must be >= 0 (0: {zero}), got {value}")
    export_format = export_format_of(args.output, args.export_format)
    if export_format == "torchscript" and args.batch_size:
        raise UserError("--batch-size fixes the batch of an ONNX file; a TorchScript file "
                        "takes any batch: drop --batch-size, or write .onnx")
    if export_format == "torchscript" and args.opset:
        raise UserError("--opset chooses an ONNX file's operator set; a TorchScript file "
                        "has none: drop --opset, or write .onnx")
    loaded, dataset = load_network_file("export", args)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)  # unusable: fail before work
    spec = get_dataset_spec(dataset, args.image_size or loaded.image_size or None)
    size = args.image_size or loaded.image_size or spec.image_size
    trained = trained_size(loaded, dataset)
    metadata = {"arch": loaded.architecture.to_qualified_string(), "dataset": dataset,
                "classes": loaded.classes or [], "image_size": size,
                "trained_image_size": trained,  # --image-size may export it at another
                "mean": list(spec.mean), "std": list(spec.std),
                "input": "float32 N x 3 x H x W, scaled to [0, 1] then (x - mean) / std",
                "preprocessing": preprocessing_text(dataset, args.image_size
                                                    or loaded.image_size),
                "output": "logits N x classes"}
    export_model(loaded.network, args.output, export_format,
                 ExportSpec(image_size=size, batch_size=args.batch_size, opset=args.opset),
                 metadata)
    batch = args.batch_size or "dynamic"
    written = (f" (operator set {read_metadata(args.output)['opset']})"
               if export_format == "onnx" else "")
    print(f"wrote {args.output}: {export_format}{written}, input {batch} x 3 x {size} x "
          f"{size}, {loaded.network.config.num_classes} classes, {metadata['arch']}")
    return 0


def export_format_of(output: str, asked: str | None) -> str:
    """The format to write ``output`` in: ``asked`` (--format), else the one its suffix
    names. A UserError when the suffix names another format than the one asked (an ONNX
    runtime would then be handed a TorchScript file), or none and none is asked."""

    suffix = Path(output).suffix.lower()
    named = next((name for name, suffixes in FORMAT_SUFFIXES.items() if suffix in suffixes),
                 None)
    if asked is not None and named is not None and named != asked:
        raise UserError(f"--format {asked} does not fit {output} ({suffix} is the suffix of "
                        f"{named} files); name it {FORMAT_SUFFIXES[asked][0]}, or drop "
                        "--format")
    if asked is None and named is None:
        first = [suffixes[0] for suffixes in FORMAT_SUFFIXES.values()]
        raise UserError(f"cannot tell the format from {output}'s suffix; name it "
                        f"{' or '.join(first)}, or pass --format {'|'.join(FORMATS)}")
    return asked or named
